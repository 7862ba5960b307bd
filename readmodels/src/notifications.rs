//! What is worth telling people, and the in-app feed (`read.notifications`, with each
//! person's read mark in `read.notification_marks`).
//!
//! [`notices`] says, purely from an event, who is told what (`kind` and its `data`); the feed
//! projection stores each notice once (its id is derived from the event and the person, so a
//! redelivery or a rebuild writes the same row) and the push notifier sends the same notices.
//! Texts are rendered when read, from the templates in `content/notifications.json`, in the
//! reader's `language` ([`Templates::render`]): a language change applies to the whole feed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use events::{ClosedPeriod, Event, EventData, PointsReason};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// One thing to tell one person.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Its id: the same for the same event and person, wherever it is computed.
    pub id: Uuid,
    /// Who is told.
    pub user_id: Uuid,
    /// `level_reached`, `badge_earned`, `character_unlocked`, `friend_joined`, `bonus_granted`
    /// or `period_result`.
    pub kind: &'static str,
    /// What the texts are made from (ids, numbers; never another person's personal data).
    pub data: Value,
}

/// The notices `event` gives rise to (pure): a level reached, a badge earned, a character
/// unlocked, an invited friend joined (to the inviter), a bonus granted, and a closed week or
/// month to each of its top 100.
pub fn notices(event: &Event) -> Vec<Notice> {
    let one = |user_id: Uuid, kind: &'static str, data: Value| Notice {
        id: notice_id(event.id, user_id),
        user_id,
        kind,
        data,
    };
    match &event.data {
        EventData::LevelReached(l) => vec![one(l.user_id, "level_reached", json!({"level": l.level}))],
        EventData::BadgeEarned(b) => vec![one(b.user_id, "badge_earned", json!({"badge_id": b.badge_id}))],
        EventData::CharacterUnlocked(c) => {
            vec![one(c.user_id, "character_unlocked", json!({"character_id": c.character_id}))]
        }
        EventData::InviteAccepted(i) => vec![one(i.inviter_id, "friend_joined", json!({}))],
        EventData::PointsEarned(p) if p.reason == PointsReason::Bonus => {
            vec![one(p.user_id, "bonus_granted", json!({"amount": p.amount}))]
        }
        EventData::LeaderboardPeriodClosed(c) => c
            .standings
            .iter()
            .map(|s| {
                let data =
                    json!({"period": c.period.name(), "period_key": c.period_key, "rank": s.rank, "points": s.points});
                one(s.user_id, "period_result", data)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The id of the notice of `event` to `user`.
pub fn notice_id(event: Uuid, user: Uuid) -> Uuid {
    Uuid::new_v5(&event, user.as_bytes())
}

/// A title and a body.
#[derive(Debug, Clone, Deserialize)]
pub struct Text {
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
}

/// The templates of `content/notifications.json`: per kind, per language (`ko`, `en`).
#[derive(Debug, Clone)]
pub struct Templates(HashMap<String, HashMap<String, Text>>);

/// The shipped templates.
pub const TEMPLATES: &str = include_str!("../../content/notifications.json");

impl Templates {
    /// The shipped templates (read once).
    pub fn shipped() -> &'static Self {
        static SHIPPED: std::sync::LazyLock<Templates> =
            // Checked by a unit test; a broken file cannot ship.
            std::sync::LazyLock::new(|| Templates(serde_json::from_str(TEMPLATES).unwrap_or_default()));
        &SHIPPED
    }

    /// The texts of a notice in `language` (Korean when there is none in it), with `{name}`
    /// placeholders filled from `data` and the catalogue's names.
    pub fn render(&self, kind: &str, data: &Value, language: &str, names: &Names) -> Text {
        let lang = if language == "en" { "en" } else { "ko" };
        let Some(text) = self.0.get(kind).and_then(|t| t.get(lang).or_else(|| t.get("ko"))) else {
            return Text { title: kind.to_owned(), body: String::new() };
        };
        let mut values: Vec<(String, String)> = data
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        let name = |map: &HashMap<String, (String, String)>, id: Option<&str>| {
            id.and_then(|id| map.get(id)).map(|(ko, en)| if lang == "en" { en.clone() } else { ko.clone() })
        };
        if let Some(n) = name(&names.badges, data["badge_id"].as_str()) {
            values.push(("badge_name".into(), n));
        }
        if let Some(n) = name(&names.characters, data["character_id"].as_str()) {
            values.push(("character_name".into(), n));
        }
        let (ko, en) = match data["period"].as_str() {
            Some(p) if p == ClosedPeriod::Monthly.name() => ("월간", "month"),
            _ => ("주간", "week"),
        };
        values.push(("period_ko".into(), ko.into()));
        values.push(("period_en".into(), en.into()));
        let fill = |s: &str| values.iter().fold(s.to_owned(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v));
        Text { title: fill(&text.title), body: fill(&text.body) }
    }
}

/// The catalogue's names, `(ko, en)` by id, for the texts.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Badges.
    pub badges: HashMap<String, (String, String)>,
    /// Characters.
    pub characters: HashMap<String, (String, String)>,
}

impl Names {
    /// Reads the names of both catalogues.
    pub async fn load(db: &PgPool) -> sqlx::Result<Self> {
        let rows = |table: &'static str| async move {
            let rows: Vec<(String, String, String)> =
                sqlx::query_as(&format!("select id, name_ko, name_en from {table}")).fetch_all(db).await?;
            Ok::<_, sqlx::Error>(rows.into_iter().map(|(id, ko, en)| (id, (ko, en))).collect())
        };
        Ok(Self { badges: rows("rewards.badges").await?, characters: rows("rewards.characters").await? })
    }
}

/// A stored notice.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    /// Its id.
    pub id: Uuid,
    /// Kind.
    pub kind: String,
    /// Data.
    pub data: Value,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Whether it is at or before the read mark.
    pub read: bool,
}

/// A feed page, newest first: up to `limit` notices before `after` (`(created_at, id)`), and
/// whether more follow.
pub async fn page(
    db: &PgPool,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<(Vec<Row>, bool)> {
    let rows: Vec<Row> = sqlx::query_as(
        "select n.id, n.kind, n.data, n.created_at,
                coalesce((n.created_at, n.id) <= (m.up_to_at, m.up_to_id), false) as read
         from read.notifications n left join read.notification_marks m using (user_id)
         where n.user_id = $1 and ($2::timestamptz is null or (n.created_at, n.id) < ($2, $3))
         order by n.created_at desc, n.id desc limit $4",
    )
    .bind(user_id)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(crate::page_of(rows, limit))
}

/// How many of a user's notices are after their read mark.
pub async fn unread(db: &PgPool, user_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from read.notifications n left join read.notification_marks m using (user_id)
         where n.user_id = $1 and (m.user_id is null or (n.created_at, n.id) > (m.up_to_at, m.up_to_id))",
    )
    .bind(user_id)
    .fetch_one(db)
    .await
}

/// Whether `id` is one of the user's notices.
pub async fn exists(db: &PgPool, user_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from read.notifications where user_id = $1 and id = $2)")
        .bind(user_id)
        .bind(id)
        .fetch_one(db)
        .await
}

/// Writing, for the notifications projector, inside its batch transaction (tables unqualified).
pub mod write {
    use chrono::{DateTime, Utc};
    use sqlx::PgConnection;
    use uuid::Uuid;

    use super::Notice;

    /// Stores a notice once (never for someone forgotten).
    pub async fn record(tx: &mut PgConnection, notice: &Notice, at: DateTime<Utc>) -> sqlx::Result<()> {
        sqlx::query(
            "insert into notifications (id, user_id, kind, data, created_at) select $1, $2, $3, $4, $5
             where not exists (select 1 from notifications_tombstones where user_id = $2)
             on conflict do nothing",
        )
        .bind(notice.id)
        .bind(notice.user_id)
        .bind(notice.kind)
        .bind(&notice.data)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Moves the user's read mark forward to notice `up_to` (an id not in their feed changes
    /// nothing).
    pub async fn mark_read(tx: &mut PgConnection, user_id: Uuid, up_to: Uuid) -> sqlx::Result<()> {
        sqlx::query(
            "insert into notification_marks (user_id, up_to_at, up_to_id)
             select user_id, created_at, id from notifications where user_id = $1 and id = $2
             on conflict (user_id) do update set up_to_at = excluded.up_to_at, up_to_id = excluded.up_to_id
             where (notification_marks.up_to_at, notification_marks.up_to_id) < (excluded.up_to_at, excluded.up_to_id)",
        )
        .bind(user_id)
        .bind(up_to)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Forgets a person's feed for good.
    pub async fn forget(tx: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
        crate::forget_person(tx, user_id, &["notifications", "notification_marks"], "notifications_tombstones").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_templates_cover_every_kind_in_both_languages_and_fill_their_placeholders() {
        let t: HashMap<String, HashMap<String, serde_json::Value>> = serde_json::from_str(TEMPLATES).unwrap();
        for kind in
            ["level_reached", "badge_earned", "character_unlocked", "friend_joined", "bonus_granted", "period_result"]
        {
            for lang in ["ko", "en"] {
                assert!(t[kind].contains_key(lang), "{kind} {lang}");
            }
        }
        let templates = Templates::shipped();
        let data = json!({"period": "weekly", "period_key": "2026-W47", "rank": 3, "points": 120});
        let en = templates.render("period_result", &data, "en", &Names::default());
        assert_eq!(en.title, "You finished #3 this week");
        let ko = templates.render("period_result", &data, "ko", &Names::default());
        assert_eq!(ko.title, "주간 순위 3위");
        let mut names = Names::default();
        names.badges.insert("scans-10".into(), ("스캔 10회".into(), "10 scans".into()));
        let badge = templates.render("badge_earned", &json!({"badge_id": "scans-10"}), "en", &names);
        assert_eq!(badge.title, "New badge: 10 scans");
        assert!(!badge.body.contains('{'), "{}", badge.body);
    }

    #[test]
    fn a_closed_week_tells_each_of_its_top_and_ids_are_stable() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let event = Event::new(
            "x",
            Uuid::now_v7(),
            events::LeaderboardPeriodClosed {
                period: ClosedPeriod::Weekly,
                period_key: "2026-W47".into(),
                closed_at: Utc::now(),
                participants: 5,
                standings: vec![
                    events::FinalStanding { rank: 1, user_id: a, points: 9 },
                    events::FinalStanding { rank: 2, user_id: b, points: 5 },
                ],
            }
            .into(),
        );
        let told = notices(&event);
        assert_eq!(told.iter().map(|n| n.user_id).collect::<Vec<_>>(), [a, b]);
        assert_eq!(told[1].data["rank"], 2);
        assert_eq!(notices(&event)[0].id, told[0].id, "the same notice, computed again, has the same id");
        assert_ne!(told[0].id, told[1].id);
    }
}
