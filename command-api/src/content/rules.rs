//! The rules content must follow, as pure functions over the events that record it: the admin
//! commands refuse what breaks them (422 naming each field) and `ecoctl seed` refuses shipped
//! content that breaks them, so both paths hold content to the same rules.

use events::{GuideFaqSaved, GuideItemSaved, GuideRegionSaved, PlaceSaved};
use platform::error::FieldError;

/// Field checks, collected so that one 422 lists every problem.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// `value` is `min` to `max` characters (an empty or blank value fails any `min` above 0).
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let n = value.trim().chars().count();
        if min > 0 && n == 0 {
            self.fail(field, "must not be empty");
        } else if n < min {
            self.fail(field, &format!("must be at least {min} characters"));
        } else if value.chars().count() > max {
            self.fail(field, &format!("must be at most {max} characters"));
        }
        self
    }

    /// At most `max_items` entries, each 1 to `max_len` characters.
    pub fn list(&mut self, field: &str, values: &[String], max_items: usize, max_len: usize) -> &mut Self {
        if values.len() > max_items {
            self.fail(field, &format!("at most {max_items} entries"));
        }
        if values.iter().any(|v| v.trim().is_empty() || v.chars().count() > max_len) {
            self.fail(field, &format!("entries must be 1 to {max_len} characters"));
        }
        self
    }

    /// A WGS84 position.
    pub fn point(&mut self, latitude: f64, longitude: f64) -> &mut Self {
        for (field, problem) in events::GeoPoint::problems(latitude, longitude) {
            self.fail(field, problem);
        }
        self
    }

    /// A problem found some other way.
    pub fn fail(&mut self, field: &str, message: &str) -> &mut Self {
        self.0.push(FieldError::new(field, message));
        self
    }

    /// Every problem found, if any.
    pub fn done(&mut self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() { Ok(()) } else { Err(std::mem::take(&mut self.0)) }
    }
}

/// A guide item's rules.
pub fn item(e: &GuideItemSaved) -> Result<(), Vec<FieldError>> {
    Checks::default()
        .text("name_ko", &e.name_ko, 1, 100)
        .text("name_en", &e.name_en, 1, 100)
        .text("disposal", &e.disposal, 1, 2000)
        .list("donts", &e.donts, 20, 300)
        .list("keywords", &e.keywords, 50, 50)
        .done()
}

/// A question's rules.
pub fn faq(e: &GuideFaqSaved) -> Result<(), Vec<FieldError>> {
    let mut checks = Checks::default();
    checks.text("question", &e.question, 1, 300).text("answer", &e.answer, 1, 4000);
    if !(0..=10_000).contains(&e.position) {
        checks.fail("position", "must be between 0 and 10000");
    }
    checks.done()
}

/// A region's rules (about its rules).
pub fn region(e: &GuideRegionSaved) -> Result<(), Vec<FieldError>> {
    let mut checks = Checks::default();
    checks.text("name_ko", &e.name_ko, 1, 50).text("name_en", &e.name_en, 1, 50).text("schedule", &e.schedule, 1, 500);
    let mut seen = std::collections::HashSet::new();
    for rule in &e.rules {
        if !seen.insert(rule.category) {
            checks.fail("rules", "each category at most once");
        }
        checks.text("rules.rule", &rule.rule, 1, 1000);
    }
    checks.done()
}

/// A bin's or center's rules.
pub fn place(e: &PlaceSaved) -> Result<(), Vec<FieldError>> {
    let mut checks = Checks::default();
    checks
        .text("name", &e.name, 1, 100)
        .text("address", &e.address, 0, 200)
        .point(e.location.latitude, e.location.longitude);
    if e.categories.is_empty() {
        checks.fail("categories", "must not be empty");
    }
    if let Some(h) = &e.opening_hours {
        checks.text("opening_hours", h, 1, 100);
    }
    if let Some(p) = &e.phone {
        checks.text("phone", p, 3, 30);
    }
    checks.done()
}
