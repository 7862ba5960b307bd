//! What users do: scans, recycles, the daily check-in, and accepting an invite.

use events::EventData;
use uuid::Uuid;

use super::{Invalid, invalid};

use super::NewAccount;

/// A scan as the app sent it.
#[derive(Debug, Clone)]
pub struct ScanInput {
    /// What the classifier decided.
    pub category: events::Category,
    /// The item.
    pub item_name: String,
    /// Classifier confidence, 0 to 1.
    pub confidence: Option<f64>,
    /// SHA-256 of the image, hex.
    pub image_sha256: Option<String>,
    /// When it was taken; defaults to now.
    pub scanned_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How far in the past a scan may be reported (offline phones sync late).
pub const SCAN_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// Clock skew tolerated for `scanned_at` in the future.
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Checks a scan and returns its `scan.recorded` event.
pub fn record_scan(
    user_id: Uuid,
    scan_id: Uuid,
    input: ScanInput,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<EventData, Vec<Invalid>> {
    let mut problems = Vec::new();
    let item_name = input.item_name.trim().to_owned();
    if item_name.is_empty() || item_name.chars().count() > 200 {
        problems.push(invalid("item_name", "must be 1 to 200 characters long"));
    }
    if let Some(c) = input.confidence
        && !(0.0..=1.0).contains(&c)
    {
        problems.push(invalid("confidence", "must be between 0 and 1"));
    }
    let image_sha256 = input.image_sha256.map(|h| h.trim().to_ascii_lowercase());
    if let Some(h) = &image_sha256
        && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        problems.push(invalid("image_sha256", "must be the 64 hex digits of a SHA-256"));
    }
    let scanned_at = input.scanned_at.unwrap_or(now);
    if scanned_at > now + CLOCK_SKEW {
        problems.push(invalid("scanned_at", "must not be in the future"));
    } else if scanned_at < now - SCAN_MAX_AGE {
        problems.push(invalid("scanned_at", "must be within the last 7 days"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(events::ScanRecorded {
        scan_id,
        user_id,
        category: input.category,
        item_name,
        confidence: input.confidence,
        image_sha256,
        scanned_at: chrono::SubsecRound::trunc_subsecs(scanned_at, 6),
    }
    .into())
}

/// A recycle as the app sent it.
#[derive(Debug, Clone)]
pub struct RecycleInput {
    /// What was recycled.
    pub category: events::Category,
    /// The bin used.
    pub bin_id: Option<Uuid>,
    /// The center used.
    pub center_id: Option<Uuid>,
    /// Where.
    pub latitude: Option<f64>,
    /// Where.
    pub longitude: Option<f64>,
}

/// Checks a recycle and returns its `recycle.completed` event.
pub fn complete_recycle(user_id: Uuid, recycle_id: Uuid, input: RecycleInput) -> Result<EventData, Vec<Invalid>> {
    let mut problems = Vec::new();
    match (input.latitude, input.longitude) {
        (Some(lat), Some(lon)) => {
            problems.extend(events::GeoPoint::problems(lat, lon).into_iter().map(|(f, m)| invalid(f, m)));
        }
        (None, None) => {}
        (Some(_), None) => problems.push(invalid("longitude", "is required with latitude")),
        (None, Some(_)) => problems.push(invalid("latitude", "is required with longitude")),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(events::RecycleCompleted {
        recycle_id,
        user_id,
        category: input.category,
        bin_id: input.bin_id,
        center_id: input.center_id,
        location: input
            .latitude
            .zip(input.longitude)
            .map(|(latitude, longitude)| events::GeoPoint { latitude, longitude }),
    }
    .into())
}

/// The daily check-in: the local date of `now` in the app's time zone. Whether the user already
/// checked in that day is the write model's unique key, not this function's business.
pub fn check_in(user_id: Uuid, now: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> EventData {
    events::AttendanceCheckedIn { user_id, date: now.with_timezone(&tz).date_naive() }.into()
}

/// Registration with an invite code: the invitee's `user.registered` names the inviter, and an
/// `invite.accepted` pays the inviter. Refuses a code that would make a user invite themselves.
pub fn accept_invite(account: &mut NewAccount, inviter_id: Uuid) -> Result<(), Vec<Invalid>> {
    if inviter_id == account.user_id {
        return Err(vec![invalid("invite_code", "you cannot invite yourself")]);
    }
    for e in &mut account.events {
        if let EventData::UserRegistered(r) = e {
            r.invited_by = Some(inviter_id);
        }
    }
    account.events.push(events::InviteAccepted { inviter_id, invitee_id: account.user_id }.into());
    Ok(())
}

#[cfg(test)]
mod gamification_tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::{Registration, register};

    fn scan(at: Option<chrono::DateTime<Utc>>) -> ScanInput {
        ScanInput {
            category: events::Category::Plastic,
            item_name: " PET bottle ".into(),
            confidence: Some(0.9),
            image_sha256: Some("AB".repeat(32)),
            scanned_at: at,
        }
    }

    #[test]
    fn a_scan_is_normalised_and_stamped() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
        let EventData::ScanRecorded(e) = record_scan(Uuid::nil(), Uuid::nil(), scan(None), now).unwrap() else {
            panic!()
        };
        assert_eq!(e.item_name, "PET bottle");
        assert_eq!(e.image_sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(e.scanned_at, now);
    }

    #[test]
    fn scans_from_the_future_or_long_ago_are_refused() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
        let future = record_scan(Uuid::nil(), Uuid::nil(), scan(Some(now + chrono::TimeDelta::hours(1))), now);
        assert_eq!(future.unwrap_err()[0].field, "scanned_at");
        let old = record_scan(Uuid::nil(), Uuid::nil(), scan(Some(now - chrono::TimeDelta::days(8))), now);
        assert_eq!(old.unwrap_err()[0].message, "must be within the last 7 days");
        let mut bad = scan(None);
        bad.confidence = Some(1.2);
        bad.image_sha256 = Some("xyz".into());
        let fields: Vec<_> =
            record_scan(Uuid::nil(), Uuid::nil(), bad, now).unwrap_err().iter().map(|p| p.field).collect();
        assert_eq!(fields, ["confidence", "image_sha256"]);
    }

    #[test]
    fn a_recycle_needs_both_coordinates_or_none() {
        let input = RecycleInput {
            category: events::Category::Glass,
            bin_id: None,
            center_id: None,
            latitude: Some(37.5),
            longitude: None,
        };
        assert_eq!(complete_recycle(Uuid::nil(), Uuid::nil(), input).unwrap_err()[0].field, "longitude");
    }

    #[test]
    fn check_in_uses_the_local_date_of_the_app_time_zone() {
        // 2026-11-22 15:30 UTC is already 2026-11-23 00:30 in Seoul.
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 15, 30, 0).unwrap();
        let EventData::AttendanceCheckedIn(e) = check_in(Uuid::nil(), now, chrono_tz::Asia::Seoul) else { panic!() };
        assert_eq!(e.date.to_string(), "2026-11-23");
    }

    #[test]
    fn an_invite_names_the_inviter_and_pays_them() {
        let mut account = register(
            &Registration {
                username: "jun".into(),
                email: "j@x.io".into(),
                password: "recycle2026".into(),
                nickname: None,
            },
            Uuid::now_v7(),
        )
        .unwrap();
        let inviter = Uuid::now_v7();
        accept_invite(&mut account, inviter).unwrap();
        assert!(matches!(&account.events[0], EventData::UserRegistered(r) if r.invited_by == Some(inviter)));
        assert!(matches!(&account.events[1], EventData::InviteAccepted(i) if i.inviter_id == inviter));
        let own = account.user_id;
        assert_eq!(accept_invite(&mut account, own).unwrap_err()[0].field, "invite_code");
    }
}
