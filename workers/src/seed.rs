//! `ecoctl seed`: the recycling guide content shipped with the product (`content/guide.json`,
//! compiled in: items, questions, regional rules, and the bins and centers of Seoul), loaded through the same path as admin edits: one `guide.*` event per piece of
//! content that is new or changed, appended to the log with its command-side record, and
//! projected by `projection.guide`. Loading the same content again writes nothing.
//!
//! Ids are UUID v5 of the content's slug (or region code), so every deployment gives the same
//! piece the same id, and an admin edit of a shipped item keeps its id.

use anyhow::Context;
use command_api::content::{
    ContentKind, Saved,
    rewards::{self, BadgeContent, CharacterContent, Stored},
    rules, save,
};
use events::{Category, GeoPoint, GuideFaqSaved, GuideItemSaved, GuideRegionSaved, PlaceKind, PlaceSaved, RegionRule};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The shipped content.
pub const CONTENT: &str = include_str!("../../content/guide.json");

/// The shipped reward catalogues.
pub const REWARDS: &str = include_str!("../../content/rewards.json");

/// Namespace of the content ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x0ec0_ec00_9d1d_4c2b_a6a4_5e1f_0b7c_2d30);

/// The id of shipped content `slug` of `kind` (`item`, `faq`, `region`).
pub fn content_id(kind: &str, slug: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{kind}:{slug}").as_bytes())
}

#[derive(Deserialize)]
struct Content {
    items: Vec<Item>,
    faqs: Vec<Faq>,
    regions: Vec<Region>,
    places: Vec<Place>,
}

#[derive(Deserialize)]
struct Place {
    slug: String,
    kind: PlaceKind,
    name: String,
    address: String,
    latitude: f64,
    longitude: f64,
    categories: Vec<Category>,
    opening_hours: Option<String>,
    phone: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    slug: String,
    category: Category,
    name_ko: String,
    name_en: String,
    disposal: String,
    donts: Vec<String>,
    keywords: Vec<String>,
    /// Everyday names, brand-like names and common misspellings. Kept apart in the content for
    /// its editors; for search they are keywords like any other, so they travel as keywords.
    #[serde(default)]
    aliases: Vec<String>,
}

impl Item {
    fn into_event(self) -> GuideItemSaved {
        GuideItemSaved {
            item_id: content_id("item", &self.slug),
            category: self.category,
            name_ko: self.name_ko,
            name_en: self.name_en,
            disposal: self.disposal,
            donts: self.donts,
            keywords: self.keywords.into_iter().chain(self.aliases).collect(),
        }
    }
}

#[derive(Deserialize)]
struct Faq {
    slug: String,
    category: Option<Category>,
    question: String,
    answer: String,
    position: i32,
}

#[derive(Deserialize)]
struct Region {
    code: String,
    name_ko: String,
    name_en: String,
    schedule: String,
    rules: Vec<RegionRule>,
}

/// What a seed did, per kind: `(created, changed, unchanged)`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    /// Items.
    pub items: (u32, u32, u32),
    /// Questions.
    pub faqs: (u32, u32, u32),
    /// Regions.
    pub regions: (u32, u32, u32),
    /// Bins and centers.
    pub places: (u32, u32, u32),
    /// Badges (catalogue rows, no events).
    pub badges: (u32, u32, u32),
    /// Characters (catalogue rows, no events).
    pub characters: (u32, u32, u32),
}

impl SeedReport {
    /// Events written.
    pub fn events(&self) -> u32 {
        [self.items, self.faqs, self.regions, self.places].iter().map(|(c, ch, _)| c + ch).sum()
    }
}

fn count(tally: &mut (u32, u32, u32), saved: Saved) {
    match saved {
        Saved::Created(_) => tally.0 += 1,
        Saved::Changed(_) => tally.1 += 1,
        Saved::Unchanged => tally.2 += 1,
    }
}

/// Shipped content must follow the rules the admin commands hold edits to.
fn follows(checked: Result<(), Vec<platform::error::FieldError>>, kind: &str, slug: &str) -> anyhow::Result<()> {
    checked.map_err(|errors| {
        let each: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        anyhow::anyhow!("shipped content: {kind} `{slug}` breaks the content rules: {}", each.join("; "))
    })
}

/// Loads the shipped content, in one transaction; refuses it whole if any piece breaks the
/// content rules (`command_api::content::rules`).
pub async fn seed(db: &PgPool) -> anyhow::Result<SeedReport> {
    let content: Content = serde_json::from_str(CONTENT).context("content/guide.json")?;
    let mut report = SeedReport::default();
    let mut tx = db.begin().await?;
    let source = "ecoctl-seed";
    for i in content.items {
        let slug = i.slug.clone();
        let data = i.into_event();
        follows(rules::item(&data), "item", &slug)?;
        let id = data.item_id;
        count(&mut report.items, save(&mut tx, ContentKind::Item, id, data.into(), source, None).await?);
    }
    for f in content.faqs {
        let id = content_id("faq", &f.slug);
        let data = GuideFaqSaved {
            faq_id: id,
            category: f.category,
            question: f.question,
            answer: f.answer,
            position: f.position,
        };
        follows(rules::faq(&data), "question", &f.slug)?;
        count(&mut report.faqs, save(&mut tx, ContentKind::Faq, id, data.into(), source, None).await?);
    }
    for r in content.regions {
        let id = content_id("region", &r.code);
        let data = GuideRegionSaved {
            region_id: id,
            code: r.code.clone(),
            name_ko: r.name_ko,
            name_en: r.name_en,
            schedule: r.schedule,
            rules: r.rules,
        };
        follows(rules::region(&data), "region", &r.code)?;
        count(&mut report.regions, save(&mut tx, ContentKind::Region, id, data.into(), source, None).await?);
    }
    for p in content.places {
        let place = PlaceSaved {
            place_id: content_id("place", &p.slug),
            kind: p.kind,
            name: p.name,
            address: p.address,
            location: GeoPoint { latitude: p.latitude, longitude: p.longitude },
            categories: p.categories,
            opening_hours: p.opening_hours,
            phone: p.phone,
        };
        follows(rules::place(&place), "place", &p.slug)?;
        count(&mut report.places, command_api::content::places::save(&mut tx, place, source, None).await?);
    }
    seed_rewards(&mut tx, &mut report).await?;
    tx.commit().await?;
    if let Err(e) = platform::eventstore::wake_relay(db).await {
        tracing::warn!(error = %e, "relay not woken; it publishes the seeded content on its next tick");
    }
    Ok(report)
}

/// The reward catalogues of `content/rewards.json`, each entry `{"id": …, …}`, listed in the
/// order the apps show them.
struct Rewards {
    badges: Vec<(String, BadgeContent)>,
    characters: Vec<(String, CharacterContent)>,
}

fn read_rewards() -> anyhow::Result<Rewards> {
    fn entries<T: serde::de::DeserializeOwned>(
        all: &serde_json::Value,
        list: &str,
    ) -> anyhow::Result<Vec<(String, T)>> {
        let Some(items) = all.get(list).and_then(|v| v.as_array()) else {
            anyhow::bail!("content/rewards.json: `{list}` must be a list");
        };
        items
            .iter()
            .map(|item| {
                let mut item = item.clone();
                let id = item.as_object_mut().and_then(|o| o.remove("id")).and_then(|v| v.as_str().map(str::to_owned));
                let id = id.with_context(|| format!("content/rewards.json: an entry of `{list}` has no id"))?;
                let content = serde_json::from_value(item).with_context(|| format!("content/rewards.json: `{id}`"))?;
                Ok((id, content))
            })
            .collect()
    }
    let all: serde_json::Value = serde_json::from_str(REWARDS).context("content/rewards.json")?;
    Ok(Rewards { badges: entries(&all, "badges")?, characters: entries(&all, "characters")? })
}

async fn seed_rewards(tx: &mut sqlx::PgConnection, report: &mut SeedReport) -> anyhow::Result<()> {
    let mut shipped = read_rewards()?;
    // The file's order is the display order.
    for (i, (_, b)) in shipped.badges.iter_mut().enumerate() {
        b.sort_order = i32::try_from(i).unwrap_or(i32::MAX);
    }
    for (i, (_, c)) in shipped.characters.iter_mut().enumerate() {
        c.sort_order = i32::try_from(i).unwrap_or(i32::MAX);
    }
    let tally = |t: &mut (u32, u32, u32), s: Stored| match s {
        Stored::Created => t.0 += 1,
        Stored::Changed => t.1 += 1,
        Stored::Unchanged => t.2 += 1,
    };
    for (id, badge) in &shipped.badges {
        follows(rewards::badge(id, badge), "badge", id)?;
        tally(&mut report.badges, rewards::save_badge(tx, id, badge).await?);
    }
    for (id, character) in &shipped.characters {
        follows(rewards::character(id, character), "character", id)?;
        let stored = rewards::save_character(tx, id, character)
            .await?
            .with_context(|| format!("content/rewards.json: character `{id}` names a badge the catalogue lacks"))?;
        tally(&mut report.characters, stored);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_content_is_complete_and_valid() {
        let content: Content = serde_json::from_str(CONTENT).unwrap();
        assert!(content.items.len() >= 100, "{} items", content.items.len());
        assert!(content.faqs.len() >= 20);
        assert_eq!(content.regions.len(), 17, "the 17 metropolitan cities and provinces");
        assert!(content.places.iter().filter(|p| p.kind == PlaceKind::Center).count() >= 5);
        assert!(content.places.iter().filter(|p| p.kind == PlaceKind::Bin).count() >= 20);
        let categories: std::collections::HashSet<_> = content.items.iter().map(|i| i.category).collect();
        assert_eq!(categories.len(), 9, "every category has items");
        for r in &content.regions {
            assert_eq!(r.rules.len(), 9, "{}: a rule per category", r.code);
        }
        for i in content.items {
            assert!(!i.aliases.is_empty(), "{}: everyday names people type", i.slug);
            let slug = i.slug.clone();
            let item = i.into_event();
            rules::item(&item).unwrap_or_else(|e| panic!("{slug} breaks the content rules: {e:?}"));
            let data = events::EventData::from(item);
            events::EventData::from_parts("guide.item_saved", 1, data.to_json()).unwrap();
        }
    }

    #[test]
    fn the_shipped_reward_catalogues_are_complete_and_valid() {
        let shipped = read_rewards().unwrap();
        assert!(shipped.badges.len() >= 20, "{} badges", shipped.badges.len());
        assert!(shipped.characters.len() >= 8, "{} characters", shipped.characters.len());
        let badge_ids: Vec<&str> = shipped.badges.iter().map(|(id, _)| id.as_str()).collect();
        for (id, badge) in &shipped.badges {
            rewards::badge(id, badge).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        }
        for (id, character) in &shipped.characters {
            rewards::character(id, character).unwrap_or_else(|e| panic!("{id}: {e:?}"));
            if let Some(badge) = &character.rule.badge_id {
                assert!(badge_ids.contains(&badge.as_str()), "{id} names an unknown badge {badge}");
            }
        }
        // What the issue names: first scan, 10/100/1,000 scans, a first honest recycle, every
        // category, 7- and 30-day streaks, an invited friend, a week in the top 10.
        use events::rules::rewards::Criterion as C;
        let criteria: Vec<&C> = shipped.badges.iter().map(|(_, b)| &b.criterion).collect();
        for wanted in [
            C::Scans { count: 1 },
            C::Scans { count: 10 },
            C::Scans { count: 100 },
            C::Scans { count: 1000 },
            C::Recycles { count: 1 },
            C::AllCategories,
            C::Streak { days: 7 },
            C::Streak { days: 30 },
            C::Invites { count: 1 },
            C::WeeklyRank { rank: 10 },
        ] {
            assert!(criteria.contains(&&wanted), "no badge for {wanted:?}");
        }
        assert!(
            shipped.characters.iter().any(|(_, c)| c.rule.level == Some(1) && c.rule.badge_id.is_none()),
            "everyone starts with a character"
        );
    }
}
