//! The published rules of the game (DESIGN §4): what each action pays and where levels begin.
//! Pure; shared by the points policy and everything that shows levels.

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

#[cfg(test)]
mod tests {
    use super::*;

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
