//! Search keys for the recycling guide that understand how Korean is typed.
//!
//! Trigrams over whole Hangul syllables see a one-jamo slip (`페트벙` for `페트병`) as a different
//! character, and PostgreSQL's `pg_trgm` only counts letters its locale calls alphanumeric, so a
//! database created with the C locale would see no Korean at all. So the guide is searched over
//! derived keys in plain ASCII, the same under any locale:
//!
//! * **Korean key**: every Hangul syllable decomposed into its jamo by the Unicode algorithm
//!   (initial, vowel, optional final; compound vowels and finals split into their parts), each
//!   jamo written as one ASCII letter or digit, white space dropped inside a term (so
//!   `스티로폼박스` and `스티로폼 박스` are the same key). A one-jamo slip now costs one
//!   character of about nine, not a whole syllable.
//! * **English key**: lower-case ASCII letters and digits, words kept apart.
//! * **Initials key**: the initial consonant of each syllable, so `ㅍㅌㅂ` finds `페트병`.
//! * **Exact keys**: names and keywords lower-cased with white space removed.
//!
//! Items store the keys of their names and keywords (aliases included); a query is turned into
//! the same keys and scored in SQL (`query-api`'s guide search): exact name, then exact keyword,
//! then trigram similarity of the keys.

/// Initial consonants (choseong), in Unicode order.
const INITIALS: [&str; 19] =
    ["g", "1", "n", "d", "2", "r", "m", "b", "3", "s", "4", "x", "j", "5", "c", "k", "t", "p", "h"];
/// Vowels (jungseong), in Unicode order; compound vowels as their parts.
const VOWELS: [&str; 21] =
    ["a", "f", "y", "6", "o", "e", "u", "7", "w", "wa", "wf", "wq", "v", "i", "io", "ie", "iq", "l", "z", "zq", "q"];
/// Final consonants (jongseong), in Unicode order after "none"; compound finals as their parts.
const FINALS: [&str; 28] = [
    "", "g", "1", "gs", "n", "nj", "nh", "d", "r", "rg", "rm", "rb", "rs", "rt", "rp", "rh", "m", "b", "bs", "s", "4",
    "x", "j", "c", "k", "t", "p", "h",
];
/// Hangul compatibility jamo U+3131–U+314E (consonants, as typed alone).
const COMPAT_CONSONANTS: [&str; 30] = [
    "g", "1", "gs", "n", "nj", "nh", "d", "2", "r", "rg", "rm", "rb", "rs", "rt", "rp", "rh", "m", "b", "3", "bs", "s",
    "4", "x", "j", "5", "c", "k", "t", "p", "h",
];

const SYLLABLE_FIRST: u32 = 0xAC00;
const SYLLABLE_LAST: u32 = 0xD7A3;
const COMPAT_FIRST: u32 = 0x3131;
const COMPAT_VOWEL_FIRST: u32 = 0x314F;
const COMPAT_LAST: u32 = 0x3163;

/// How one character reads in the Korean key, if it is Hangul.
fn jamo(c: char, key: &mut String) -> bool {
    let code = c as u32;
    match code {
        SYLLABLE_FIRST..=SYLLABLE_LAST => {
            let index = (code - SYLLABLE_FIRST) as usize;
            key.push_str(INITIALS[index / 588]);
            key.push_str(VOWELS[(index % 588) / 28]);
            key.push_str(FINALS[index % 28]);
            true
        }
        COMPAT_FIRST..COMPAT_VOWEL_FIRST => {
            key.push_str(COMPAT_CONSONANTS[(code - COMPAT_FIRST) as usize]);
            true
        }
        COMPAT_VOWEL_FIRST..=COMPAT_LAST => {
            key.push_str(VOWELS[(code - COMPAT_VOWEL_FIRST) as usize]);
            true
        }
        _ => false,
    }
}

/// The Korean key of one term: its Hangul as jamo codes, white space and everything else dropped.
pub fn korean(term: &str) -> String {
    let mut key = String::new();
    for c in term.chars() {
        jamo(c, &mut key);
    }
    key
}

/// The initials key of one term: the initial consonant of each syllable, and consonants typed alone.
pub fn initials(term: &str) -> String {
    term.chars()
        .filter_map(|c| {
            let code = c as u32;
            match code {
                SYLLABLE_FIRST..=SYLLABLE_LAST => Some(INITIALS[(code - SYLLABLE_FIRST) as usize / 588]),
                COMPAT_FIRST..COMPAT_VOWEL_FIRST => Some(COMPAT_CONSONANTS[(code - COMPAT_FIRST) as usize]),
                _ => None,
            }
        })
        .collect()
}

/// The English key of one term: lower-case ASCII words.
pub fn english(term: &str) -> String {
    let lower = term.to_lowercase();
    lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A term as an exact key: lower-cased, white space removed.
pub fn exact(term: &str) -> String {
    term.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect()
}

/// The search keys of a guide item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKeys {
    /// Korean keys of the names and keywords, space-separated.
    pub korean: String,
    /// English keys, space-separated.
    pub english: String,
    /// Initials keys, space-separated.
    pub initials: String,
    /// Exact keys of the two names.
    pub names: Vec<String>,
    /// Exact keys of the keywords.
    pub terms: Vec<String>,
}

impl ItemKeys {
    /// The keys of an item with these names and keywords.
    pub fn new(name_ko: &str, name_en: &str, keywords: &[String]) -> Self {
        let all: Vec<&str> = [name_ko, name_en].into_iter().chain(keywords.iter().map(String::as_str)).collect();
        let join = |f: fn(&str) -> String| {
            let mut keys: Vec<String> = all.iter().map(|t| f(t)).filter(|k| !k.is_empty()).collect();
            keys.dedup();
            keys.join(" ")
        };
        Self {
            korean: join(korean),
            english: join(english),
            initials: join(initials),
            names: vec![exact(name_ko), exact(name_en)],
            terms: keywords.iter().map(|k| exact(k)).filter(|k| !k.is_empty()).collect(),
        }
    }
}

/// A query as keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryKeys {
    /// Exact key.
    pub exact: String,
    /// Korean key (empty when the query has no Hangul).
    pub korean: String,
    /// English key (empty when it has no ASCII letters or digits).
    pub english: String,
    /// Initials key, when the query is initial consonants only (`ㅍㅌㅂ`); empty otherwise.
    pub initials: String,
}

impl QueryKeys {
    /// The keys of `q`.
    pub fn new(q: &str) -> Self {
        let letters: Vec<char> = q.chars().filter(|c| !c.is_whitespace()).collect();
        let consonants_only =
            !letters.is_empty() && letters.iter().all(|&c| (COMPAT_FIRST..COMPAT_VOWEL_FIRST).contains(&(c as u32)));
        Self {
            exact: exact(q),
            korean: if consonants_only { String::new() } else { korean(q) },
            english: english(q),
            initials: if consonants_only { initials(q) } else { String::new() },
        }
    }
}

/// The least score a search hit needs: about half the trigrams of the query's key.
pub const MIN_SCORE: f64 = 0.45;

/// The guide search over `read.guide_items`, best first. Binds: `$1` [`QueryKeys::exact`],
/// `$2` Korean, `$3` English, `$4` initials, `$5` category or null, `$6` [`MIN_SCORE`], `$7`
/// limit. Scores: exact name 3, exact keyword 2, plus the best of the Korean or English key's
/// trigram word similarity (+0.5 when the query is part of the key) or the initials (1.5 for a
/// whole term's, 1 for a part). Ties: name, then id, so the order is stable.
pub const SEARCH_SQL: &str = "with scored as (
               select i.*,
                 (case when $1 = any(exact_names) then 3.0 when $1 = any(exact_terms) then 2.0 else 0.0 end)
                 + greatest(
                     case when $2 = '' then 0.0 else word_similarity($2, search_korean)
                       + case when strpos(search_korean, $2) > 0 then 0.5 else 0.0 end end,
                     case when $3 = '' then 0.0 else word_similarity($3, search_english)
                       + case when strpos(search_english, $3) > 0 then 0.5 else 0.0 end end,
                     case when $4 = '' then 0.0
                          when strpos(' ' || search_initials || ' ', ' ' || $4 || ' ') > 0 then 1.5
                          when strpos(search_initials, $4) > 0 then 1.0 else 0.0 end) as score
               from read.guide_items i
               where not removed and ($5::text is null or category = $5)
             )
             select item_id, category, name_ko, name_en, disposal, donts, keywords, score::float8 as score
             from scored where score >= $6 order by score desc, name_ko, item_id limit $7";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_jamo_slip_changes_one_character_of_the_key() {
        assert_eq!(korean("페트병"), "petzbux");
        assert_eq!(korean("페트벙"), "petzbox");
        assert_eq!(korean("건전지"), "gonjonjq");
        assert_eq!(korean("건전쥐"), "gonjonjiq");
        assert_eq!(korean("스티로폼 박스"), korean("스티로폼박스"));
    }

    #[test]
    fn initials_of_syllables_and_of_consonants_typed_alone_agree() {
        assert_eq!(initials("페트병"), "ptb");
        assert_eq!(QueryKeys::new("ㅍㅌㅂ").initials, "ptb");
        assert_eq!(QueryKeys::new("ㅍㅌㅂ").korean, "", "an initials query is not a Korean key");
        assert_eq!(QueryKeys::new("페트ㅂ").initials, "", "a syllable makes it an ordinary query");
        assert_eq!(QueryKeys::new("페트ㅂ").korean, "petzb");
    }

    #[test]
    fn every_key_is_plain_ascii() {
        let keys = ItemKeys::new("뽁뽁이(에어캡)", "Bubble Wrap", &["뾱뾱이".into(), "PET 병".into()]);
        for key in [&keys.korean, &keys.english, &keys.initials] {
            assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' '), "{key}");
        }
        assert_eq!(keys.english, "bubble wrap pet");
        assert_eq!(keys.names, ["뽁뽁이(에어캡)", "bubblewrap"]);
        assert_eq!(keys.terms, ["뾱뾱이", "pet병"]);
    }
}
