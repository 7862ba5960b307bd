//! Sessions: refresh-token rotation with reuse detection.

/// What a presented refresh token's record says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshRecord {
    /// When it was spent by a refresh, if it was.
    pub spent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When its family was revoked, if it was.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What to do with a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Spend it and issue the next token of the family.
    Rotate,
    /// Spent a moment ago (a concurrent refresh of the same app): issue another pair in the
    /// family without revoking anything.
    Grace,
    /// Spent earlier: someone replays a stolen token. Revoke the whole family.
    Reuse,
    /// The family was revoked (logout, reuse, password change).
    Revoked,
}

/// Judges a refresh (rotation with reuse detection); `grace` is how long a spent token is still
/// honoured.
pub fn judge_refresh(
    record: RefreshRecord,
    now: chrono::DateTime<chrono::Utc>,
    grace: chrono::TimeDelta,
) -> RefreshDecision {
    match record {
        RefreshRecord { revoked_at: Some(_), .. } => RefreshDecision::Revoked,
        RefreshRecord { spent_at: None, .. } => RefreshDecision::Rotate,
        RefreshRecord { spent_at: Some(at), .. } if now - at <= grace => RefreshDecision::Grace,
        RefreshRecord { spent_at: Some(_), .. } => RefreshDecision::Reuse,
    }
}

#[cfg(test)]
mod refresh_tests {
    use chrono::{TimeDelta, Utc};

    use super::*;

    const GRACE: TimeDelta = TimeDelta::seconds(10);

    #[test]
    fn a_spent_token_is_honoured_briefly_then_treated_as_stolen() {
        let now = Utc::now();
        let fresh = RefreshRecord { spent_at: None, revoked_at: None };
        assert_eq!(judge_refresh(fresh, now, GRACE), RefreshDecision::Rotate);
        let just_spent = RefreshRecord { spent_at: Some(now - TimeDelta::seconds(2)), revoked_at: None };
        assert_eq!(judge_refresh(just_spent, now, GRACE), RefreshDecision::Grace);
        let long_spent = RefreshRecord { spent_at: Some(now - TimeDelta::minutes(5)), revoked_at: None };
        assert_eq!(judge_refresh(long_spent, now, GRACE), RefreshDecision::Reuse);
        let revoked = RefreshRecord { spent_at: None, revoked_at: Some(now) };
        assert_eq!(judge_refresh(revoked, now, GRACE), RefreshDecision::Revoked);
    }
}
