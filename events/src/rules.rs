//! The published rules of the game (DESIGN §4): what each action pays, where levels begin, and
//! how a user's invite code is derived. Pure; shared by the write side, the points policy and the
//! read models.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Points for one scan.
pub const SCAN_POINTS: i64 = 10;
/// Points for one completed recycle.
pub const RECYCLE_POINTS: i64 = 50;
/// Points for the daily check-in.
pub const ATTENDANCE_POINTS: i64 = 5;
/// Points to the inviter when an invited friend joins.
pub const INVITE_POINTS: i64 = 100;

/// The first point total of each level: level 1 from 0, 2 from 101, 3 from 301, 4 from 601,
/// 5 from 1001.
pub const LEVEL_STARTS: [i64; 5] = [0, 101, 301, 601, 1001];

/// The highest level.
pub const MAX_LEVEL: i32 = 5;

/// The level of a point total.
pub fn level_for(points: i64) -> i32 {
    LEVEL_STARTS.iter().rposition(|start| points >= *start).map_or(1, |i| i as i32 + 1)
}

/// The point total where `level` begins, if there is such a level.
pub fn level_start(level: i32) -> Option<i64> {
    usize::try_from(level - 1).ok().and_then(|i| LEVEL_STARTS.get(i)).copied()
}

/// The invite code of a user: 8 characters of Crockford base32 from a hash of the user id.
/// Derived, so a rebuild gives every user the same code again. PostgreSQL derives the same for
/// the write side (`auth.invite_code(id)`, a generated column of `auth.users`).
pub fn invite_code(user_id: Uuid) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let digest = Sha256::digest(user_id.as_bytes());
    let bits = u64::from_be_bytes([digest[0], digest[1], digest[2], digest[3], digest[4], 0, 0, 0]) >> 24;
    (0..8).rev().map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn invite_codes_are_stable_and_readable() {
        let id = Uuid::now_v7();
        let code = invite_code(id);
        assert_eq!(code, invite_code(id));
        assert_eq!(code.len(), 8);
        assert!(code.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert!(!code.contains(['I', 'L', 'O', 'U']));
        assert_ne!(code, invite_code(Uuid::now_v7()));
        // The value the migration backfills with in SQL for the same id.
        let known = Uuid::parse_str("0193b0c4-5e1a-7c2e-9f3d-2a6b8c4e1f07").unwrap();
        assert_eq!(invite_code(known), "0FQ78XCX", "auth.invite_code() in migrations/20261124000018 gives the same");
    }

    #[test]
    fn levels_follow_the_design_table_at_every_boundary() {
        for (points, level) in
            [(0, 1), (100, 1), (101, 2), (300, 2), (301, 3), (600, 3), (601, 4), (1000, 4), (1001, 5), (99_999, 5)]
        {
            assert_eq!(level_for(points), level, "{points} points");
        }
        assert_eq!(level_for(-5), 1);
        assert_eq!(level_start(2), Some(101));
        assert_eq!(level_start(6), None);
    }
}
