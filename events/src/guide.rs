//! Events of the recycling guide: content edited by admins (or loaded by `ecoctl seed`) and
//! users finding an answer helpful. Content events carry the whole new state of the thing they
//! are about, so a projection needs only the latest one per id.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{Category, Validate, check_len};

/// `guide.item_saved` v1: an item of the guide was created or changed (whole new state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GuideItemSaved {
    /// The item.
    pub item_id: Uuid,
    /// Its category.
    pub category: Category,
    /// Korean name, e.g. `페트병`.
    #[schemars(length(min = 1, max = 100))]
    pub name_ko: String,
    /// English name, e.g. `PET bottle`.
    #[schemars(length(min = 1, max = 100))]
    pub name_en: String,
    /// How to dispose of it, in Korean.
    #[schemars(length(min = 1, max = 2000))]
    pub disposal: String,
    /// What not to do.
    #[serde(default)]
    pub donts: Vec<String>,
    /// Extra search words (synonyms, brands, English and Korean).
    #[serde(default)]
    pub keywords: Vec<String>,
}
impl Validate for GuideItemSaved {
    fn validate(&self) -> Result<(), String> {
        check_len("name_ko", &self.name_ko, 1, 100)?;
        check_len("name_en", &self.name_en, 1, 100)?;
        check_len("disposal", &self.disposal, 1, 2000)?;
        if self.donts.len() > 20 || self.keywords.len() > 50 {
            return Err("at most 20 donts and 50 keywords".into());
        }
        Ok(())
    }
}

/// `guide.item_removed` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GuideItemRemoved {
    /// The item.
    pub item_id: Uuid,
}
impl Validate for GuideItemRemoved {}

/// `guide.faq_saved` v1: a question of the FAQ was created or changed (whole new state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GuideFaqSaved {
    /// The question.
    pub faq_id: Uuid,
    /// The category it is about, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// The question, in Korean.
    #[schemars(length(min = 1, max = 300))]
    pub question: String,
    /// The answer, in Korean.
    #[schemars(length(min = 1, max = 4000))]
    pub answer: String,
    /// Place in the list (ascending).
    pub position: i32,
}
impl Validate for GuideFaqSaved {
    fn validate(&self) -> Result<(), String> {
        check_len("question", &self.question, 1, 300)?;
        check_len("answer", &self.answer, 1, 4000)
    }
}

/// `guide.faq_removed` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GuideFaqRemoved {
    /// The question.
    pub faq_id: Uuid,
}
impl Validate for GuideFaqRemoved {}

/// The disposal rule of one category in a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct RegionRule {
    /// The category.
    pub category: Category,
    /// How, in Korean.
    #[schemars(length(min = 1, max = 1000))]
    #[schema(min_length = 1, max_length = 1000)]
    pub rule: String,
}

/// `guide.region_saved` v1: the disposal rules of a metropolitan city or province (whole new
/// state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GuideRegionSaved {
    /// Stable id of the region (derived from its code).
    pub region_id: Uuid,
    /// Short code, e.g. `seoul`, `gyeonggi`.
    #[schemars(regex(pattern = r"^[a-z][a-z-]{1,30}$"))]
    pub code: String,
    /// Korean name, e.g. `서울특별시`.
    pub name_ko: String,
    /// English name, e.g. `Seoul`.
    pub name_en: String,
    /// When household waste goes out, in Korean.
    pub schedule: String,
    /// Per-category rules.
    pub rules: Vec<RegionRule>,
}
impl Validate for GuideRegionSaved {
    fn validate(&self) -> Result<(), String> {
        if !(2..=31).contains(&self.code.len())
            || !self.code.starts_with(|c: char| c.is_ascii_lowercase())
            || !self.code.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        {
            return Err("code must be 2 to 31 lowercase letters or dashes".into());
        }
        check_len("name_ko", &self.name_ko, 1, 50)?;
        check_len("name_en", &self.name_en, 1, 50)?;
        for r in &self.rules {
            check_len("rule", &r.rule, 1, 1000)?;
        }
        Ok(())
    }
}

/// `faq.marked_helpful` v1: a user found an answer helpful (once per user and question).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FaqMarkedHelpful {
    /// The question.
    pub faq_id: Uuid,
    /// Who.
    pub user_id: Uuid,
}
impl Validate for FaqMarkedHelpful {}
