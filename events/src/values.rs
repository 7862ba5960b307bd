//! Value types and checks every event module shares (the catalogue, the guide, places): a leaf
//! the others depend on, so none of them depends on another in a circle.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Checks that serde's types alone cannot express. Mirrors the constraints in the schema.
pub(crate) trait Validate {
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A whole number in range from what serde gave: `95`, `95.0`.
fn whole<T: TryFrom<i64>, E: serde::de::Error>(number: serde_json::Number) -> Result<T, E> {
    let whole = number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (i64::MIN as f64..=i64::MAX as f64).contains(f))
            .map(|f| f as i64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| E::custom(format!("must be a whole number in range, not {number}")))
}

/// For `#[serde(deserialize_with = "events::json_integer")]` on integer fields of request
/// bodies: JSON Schema's `integer` (what the contract says) includes `95.0`, which serde's
/// integers refuse. Any JSON number with no fractional part, in range, is accepted.
pub fn json_integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    whole(serde_json::Number::deserialize(deserializer)?)
}

/// [`json_integer`] for an optional field (with `#[serde(default)]`); `null` is none.
pub fn json_integer_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    Option::<serde_json::Number>::deserialize(deserializer)?.map(whole).transpose()
}

/// [`json_integer_opt`] for a parameters struct read both from a JSON body and from a query
/// string, where the number arrives as text (`?limit=44`).
pub fn integer_param<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(serde_json::Number),
        Text(String),
    }
    match Option::<Given>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Given::Number(n)) => whole(n).map(Some),
        Some(Given::Text(t)) => {
            let n = t
                .trim()
                .parse::<serde_json::Number>()
                .map_err(|_| D::Error::custom(format!("`{t}` is not a number")))?;
            whole(n).map(Some)
        }
    }
}

/// Dates and times in payloads must lie in the years the read models can store.
pub(crate) fn check_year(field: &str, year: i32) -> Result<(), String> {
    if !(2000..=9999).contains(&year) {
        return Err(format!("{field} must be between the years 2000 and 9999"));
    }
    Ok(())
}

/// `value` is `min` to `max` characters long.
pub(crate) fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(format!("{field} must be {min} to {max} characters long"));
    }
    Ok(())
}

/// A waste category of the recycling guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Plastic.
    Plastic,
    /// Paper.
    Paper,
    /// Metal and cans.
    Metal,
    /// Glass.
    Glass,
    /// General waste.
    General,
    /// Food waste.
    Food,
    /// Large items.
    Large,
    /// Electronics.
    Electronic,
    /// Hazardous waste.
    Hazardous,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 9] = [
        Self::Plastic,
        Self::Paper,
        Self::Metal,
        Self::Glass,
        Self::General,
        Self::Food,
        Self::Large,
        Self::Electronic,
        Self::Hazardous,
    ];

    /// Its code, as the contract writes it (`plastic`, …; what serde writes).
    pub fn code(self) -> &'static str {
        match self {
            Self::Plastic => "plastic",
            Self::Paper => "paper",
            Self::Metal => "metal",
            Self::Glass => "glass",
            Self::General => "general",
            Self::Food => "food",
            Self::Large => "large",
            Self::Electronic => "electronic",
            Self::Hazardous => "hazardous",
        }
    }

    /// Its Korean and English names, as the guide shows them.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Plastic => ("플라스틱", "Plastic"),
            Self::Paper => ("종이", "Paper"),
            Self::Metal => ("금속·캔", "Metal"),
            Self::Glass => ("유리", "Glass"),
            Self::General => ("일반쓰레기", "General waste"),
            Self::Food => ("음식물", "Food waste"),
            Self::Large => ("대형폐기물", "Large items"),
            Self::Electronic => ("전자제품", "Electronics"),
            Self::Hazardous => ("유해폐기물", "Hazardous waste"),
        }
    }
}

/// A position, WGS84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// -90 to 90.
    #[schemars(range(min = -90.0, max = 90.0))]
    pub latitude: f64,
    /// -180 to 180.
    #[schemars(range(min = -180.0, max = 180.0))]
    pub longitude: f64,
}

impl GeoPoint {
    /// `degrees` rounded to 1e-7 (about a centimetre): the precision positions are computed
    /// at. Finer digits locate nothing, and subnormal values (`5e-324`) make PostgreSQL's
    /// earthdistance functions fail with an underflow.
    pub fn round(degrees: f64) -> f64 {
        (degrees * 1e7).round() / 1e7
    }

    /// What is wrong with a latitude, if anything (the one range rule of every position).
    pub fn latitude_problem(latitude: f64) -> Option<&'static str> {
        (!(-90.0..=90.0).contains(&latitude)).then_some("must be between -90 and 90")
    }

    /// What is wrong with a longitude, if anything.
    pub fn longitude_problem(longitude: f64) -> Option<&'static str> {
        (!(-180.0..=180.0).contains(&longitude)).then_some("must be between -180 and 180")
    }

    /// Each coordinate that is out of range, by field name (`latitude`, `longitude`).
    pub fn problems(latitude: f64, longitude: f64) -> Vec<(&'static str, &'static str)> {
        [("latitude", Self::latitude_problem(latitude)), ("longitude", Self::longitude_problem(longitude))]
            .into_iter()
            .filter_map(|(field, problem)| Some((field, problem?)))
            .collect()
    }

    /// The problem with these coordinates, if any.
    pub fn check(latitude: f64, longitude: f64) -> Result<(), String> {
        match Self::problems(latitude, longitude).first() {
            Some((field, problem)) => Err(format!("{field} {problem}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_category_code_is_what_serde_writes() {
        for c in Category::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.code());
        }
    }
}
