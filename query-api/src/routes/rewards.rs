//! Badges and characters: the catalogues (content) and mine (the rewards read model).

use axum::{Json, extract::State, http::HeaderMap};
use chrono::{DateTime, Utc};
use platform::{
    auth::AuthUser,
    error::ApiError,
    topology::{PROFILES, REWARDS},
};
use readmodels::rewards::{self, Badge, Character, EarnedBadge};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::users::load_profile;
use crate::{AppState, consistency::Consistency};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(badges))
        .routes(routes!(characters))
        .routes(routes!(my_badges))
        .routes(routes!(my_characters))
}

/// Declares a whole list (`next_cursor` always `null`: catalogues and awards are short).
macro_rules! whole_list {
    ($name:ident, $item:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            /// Entries.
            pub items: Vec<$item>,
            /// Always `null`: the list comes whole.
            pub next_cursor: Option<String>,
        }

        impl From<Vec<$item>> for $name {
            fn from(items: Vec<$item>) -> Self {
                Self { items, next_cursor: None }
            }
        }
    };
}

whole_list!(BadgeList, Badge, "The badge catalogue.");
whole_list!(CharacterList, Character, "The character catalogue.");
whole_list!(EarnedBadgeList, EarnedBadge, "My badges.");

/// The badge catalogue, in display order, with each badge's criterion.
#[utoipa::path(get, path = "/badges", tag = "rewards",
    responses((status = 200, body = BadgeList)))]
async fn badges(State(state): State<AppState>) -> Result<Json<BadgeList>, ApiError> {
    Ok(Json(rewards::badges(&state.db).await?.into()))
}

/// The character catalogue, in display order, with each character's unlock rule.
#[utoipa::path(get, path = "/characters", tag = "rewards",
    responses((status = 200, body = CharacterList)))]
async fn characters(State(state): State<AppState>) -> Result<Json<CharacterList>, ApiError> {
    Ok(Json(rewards::characters(&state.db).await?.into()))
}

/// My badges, in the order I earned them.
#[utoipa::path(get, path = "/users/me/badges", tag = "rewards", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = EarnedBadgeList), (status = 401, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn my_badges(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<EarnedBadgeList>), ApiError> {
    let freshness = consistency.wait(&state, &[&REWARDS]).await?;
    Ok((freshness.headers(), Json(rewards::earned_badges(&state.db, claims.sub).await?.into())))
}

/// A character I unlocked.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyCharacter {
    /// The character.
    pub character_id: String,
    /// `level` or `badge`: what completed its rule.
    pub reason: String,
    /// When.
    pub unlocked_at: DateTime<Utc>,
    /// Whether it is the one I show.
    pub selected: bool,
}

/// My characters.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyCharacters {
    /// The characters I unlocked, in the order I did.
    pub items: Vec<MyCharacter>,
    /// The one I show; `null` until I select one (`PUT /users/me/character`).
    pub selected_character_id: Option<String>,
    /// Always `null`.
    pub next_cursor: Option<String>,
}

/// My unlocked characters and the one I selected.
#[utoipa::path(get, path = "/users/me/characters", tag = "rewards", security(("bearer" = [])),
    params(("x-consistency-token" = Option<String>, Header, description = "Token from a command response")),
    responses((status = 200, body = MyCharacters), (status = 401, body = platform::error::Problem, content_type = "application/problem+json")))]
async fn my_characters(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    consistency: Consistency,
) -> Result<(HeaderMap, Json<MyCharacters>), ApiError> {
    let freshness = consistency.wait(&state, &[&REWARDS, &PROFILES]).await?;
    let selected = load_profile(&state, claims.sub, freshness.requires_primary()).await?.and_then(|p| p.character_id);
    let items = rewards::unlocked_characters(&state.db, claims.sub)
        .await?
        .into_iter()
        .map(|c| MyCharacter {
            selected: selected.as_ref() == Some(&c.character_id),
            character_id: c.character_id,
            reason: c.reason,
            unlocked_at: c.unlocked_at,
        })
        .collect();
    Ok((freshness.headers(), Json(MyCharacters { items, selected_character_id: selected, next_cursor: None })))
}
