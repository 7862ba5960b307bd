#![allow(clippy::unwrap_used)]

//! The JSON Schemas in `events/schemas/` are the contract other teams code against. These tests
//! keep them identical to the Rust types and prove every type round-trips through its schema.
//!
//! After changing a type on purpose, regenerate with `UPDATE_SCHEMAS=1 cargo test -p events`.

use std::path::PathBuf;

use chrono::{NaiveDate, TimeZone, Utc};
use events::*;
use uuid::Uuid;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn all_schemas() -> Vec<(String, serde_json::Value)> {
    let mut all = schemas();
    all.push(("envelope".into(), events::contract::envelope_schema(&all)));
    all
}

fn committed_schema(stem: &str) -> serde_json::Value {
    let path = schema_dir().join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing ({e}); run UPDATE_SCHEMAS=1 cargo test -p events", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn committed_schemas_match_the_rust_types() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    for (stem, generated) in all_schemas() {
        if update {
            let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
            std::fs::write(schema_dir().join(format!("{stem}.json")), text).unwrap();
        }
        assert_eq!(
            committed_schema(&stem),
            generated,
            "events/schemas/{stem}.json is out of date; run UPDATE_SCHEMAS=1 cargo test -p events"
        );
    }
    let files = std::fs::read_dir(schema_dir()).unwrap().count();
    assert_eq!(files, all_schemas().len(), "a schema file has no Rust type behind it");
}

/// One full sample of every event type. The `match` below fails to compile when a type is
/// added to the catalogue without a sample here.
fn samples() -> Vec<EventData> {
    let user = Uuid::now_v7();
    let other = Uuid::now_v7();
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap();
    // What the log holds of a personal field (platform::personal seals it on append).
    let sealed = || Personal::Sealed(Sealed { sealed: format!("v1.{}", "A".repeat(44)), key: user });
    let samples: Vec<EventData> = vec![
        UserRegistered {
            user_id: user,
            username: sealed(),
            nickname: sealed(),
            provider: Provider::Kakao,
            invited_by: Some(other),
        }
        .into(),
        UserEmailVerified { user_id: user }.into(),
        UserProfileUpdated { nickname: Some(sealed()), bio: Some(sealed()), avatar_url: None }.into(),
        UserSettingsUpdated { notification_enabled: Some(false), language: Some("ko".into()), theme: None }.into(),
        UserDeleted { user_id: user }.into(),
        ScanRecorded {
            scan_id: other,
            user_id: user,
            category: Category::Plastic,
            item_name: "PET bottle".into(),
            confidence: Some(0.93),
            image_sha256: Some("ab".repeat(32)),
            scanned_at: at,
        }
        .into(),
        RecycleCompleted {
            recycle_id: other,
            user_id: user,
            category: Category::Glass,
            bin_id: Some(other),
            center_id: None,
            location: Some(GeoPoint { latitude: 37.5665, longitude: 126.978 }),
        }
        .into(),
        AttendanceCheckedIn { user_id: user, date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap() }.into(),
        InviteAccepted { inviter_id: other, invitee_id: user }.into(),
        PointsEarned { user_id: user, amount: 10, reason: PointsReason::Scan, source_event_id: other }.into(),
        LevelReached { user_id: user, level: 2, points: 110 }.into(),
        MailRequested { mail_id: other, user_id: user, template: MailTemplate::ResetPassword }.into(),
        GuideItemSaved {
            item_id: other,
            category: Category::Plastic,
            name_ko: "페트병".into(),
            name_en: "PET bottle".into(),
            disposal: "내용물을 비우고 라벨을 떼어 투명 페트병 전용 수거함에 배출".into(),
            donts: vec!["음료가 남은 채로 버리지 마세요".into()],
            keywords: vec!["생수병".into(), "bottle".into()],
        }
        .into(),
        GuideItemRemoved { item_id: other }.into(),
        GuideFaqSaved {
            faq_id: other,
            category: Some(Category::Paper),
            question: "영수증은 종이류인가요?".into(),
            answer: "감열지 영수증은 일반쓰레기입니다.".into(),
            position: 3,
        }
        .into(),
        GuideFaqRemoved { faq_id: other }.into(),
        GuideRegionSaved {
            region_id: other,
            code: "seoul".into(),
            name_ko: "서울특별시".into(),
            name_en: "Seoul".into(),
            schedule: "일몰 후 ~ 자정".into(),
            rules: vec![RegionRule { category: Category::Food, rule: "음식물 전용 봉투".into() }],
        }
        .into(),
        FaqMarkedHelpful { faq_id: other, user_id: user }.into(),
        PlaceSaved {
            place_id: other,
            kind: PlaceKind::Center,
            name: "마포 자원순환센터".into(),
            address: "서울 마포구".into(),
            location: GeoPoint { latitude: 37.56, longitude: 126.9 },
            categories: vec![Category::Electronic, Category::Large],
            opening_hours: Some("09:00-18:00".into()),
            phone: None,
        }
        .into(),
        PlaceRemoved { place_id: other }.into(),
        UserPlacesChanged {
            user_id: user,
            places: vec![SavedPlace {
                saved_place_id: other,
                label: sealed(),
                location: GeoPoint { latitude: 37.5, longitude: 127.0 },
                address: Some(sealed()),
                is_default: true,
            }],
        }
        .into(),
        BadgeEarned { user_id: user, badge_id: "scans-10".into(), source_event_id: other }.into(),
        CharacterUnlocked { user_id: user, character_id: "sprout".into(), reason: UnlockReason::Level }.into(),
        UserCharacterSelected { user_id: user, character_id: "sprout".into() }.into(),
        UserNotificationsRead { user_id: user, up_to_id: other }.into(),
        AvatarUploaded {
            user_id: user,
            upload_id: other,
            format: ImageFormat::Png,
            width: 640,
            height: 480,
            size_bytes: 48_213,
        }
        .into(),
        LeaderboardPeriodClosed {
            period: ClosedPeriod::Weekly,
            period_key: "2026-W47".into(),
            closed_at: at,
            participants: 12,
            standings: vec![
                FinalStanding { rank: 1, user_id: user, points: 120 },
                FinalStanding { rank: 1, user_id: other, points: 120 },
            ],
        }
        .into(),
    ];
    for s in &samples {
        assert_eq!(
            s.clone().personal_fields(Uuid::nil()).is_some(),
            PERSONAL_FIELD_TYPES.contains(&s.event_type()),
            "PERSONAL_FIELD_TYPES lists exactly the types with personal fields: {}",
            s.event_type()
        );
        match s {
            EventData::UserRegistered(_)
            | EventData::UserEmailVerified(_)
            | EventData::UserProfileUpdated(_)
            | EventData::UserSettingsUpdated(_)
            | EventData::UserDeleted(_)
            | EventData::ScanRecorded(_)
            | EventData::RecycleCompleted(_)
            | EventData::AttendanceCheckedIn(_)
            | EventData::InviteAccepted(_)
            | EventData::PointsEarned(_)
            | EventData::LevelReached(_)
            | EventData::MailRequested(_)
            | EventData::GuideItemSaved(_)
            | EventData::GuideItemRemoved(_)
            | EventData::GuideFaqSaved(_)
            | EventData::GuideFaqRemoved(_)
            | EventData::GuideRegionSaved(_)
            | EventData::FaqMarkedHelpful(_)
            | EventData::PlaceSaved(_)
            | EventData::PlaceRemoved(_)
            | EventData::UserPlacesChanged(_)
            | EventData::BadgeEarned(_)
            | EventData::CharacterUnlocked(_)
            | EventData::UserCharacterSelected(_)
            | EventData::LeaderboardPeriodClosed(_)
            | EventData::UserNotificationsRead(_)
            | EventData::AvatarUploaded(_) => {}
        }
    }
    samples
}

#[test]
fn every_event_type_round_trips_through_its_schema() {
    let samples = samples();
    assert_eq!(samples.len(), CATALOGUE.len(), "one sample per catalogue entry");
    let envelope_schema = jsonschema::validator_for(&committed_schema("envelope")).unwrap();
    for data in samples {
        let stem = format!("{}.v{}", data.event_type(), data.version());
        let validator = jsonschema::validator_for(&committed_schema(&stem)).unwrap();
        let event = Event::new("test", Uuid::now_v7(), data.clone()).caused_by(Some(Uuid::now_v7()), None);
        let bytes = event.to_json_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();

        let errors: Vec<String> = validator.iter_errors(&json["data"]).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{stem}: {errors:?}");
        assert!(envelope_schema.is_valid(&json), "{stem}: envelope invalid");
        assert_eq!(json["type"], data.event_type());

        let decoded = Event::decode(&bytes).unwrap();
        assert_eq!(decoded, event, "{stem} did not round-trip");
    }
}

#[test]
fn what_the_schema_rejects_decoding_rejects_too() {
    let mut scan = serde_json::json!({
        "scan_id": Uuid::now_v7(), "user_id": Uuid::now_v7(), "category": "plastic",
        "item_name": "cup", "scanned_at": "2026-11-22T03:00:00Z"
    });
    let validator = jsonschema::validator_for(&committed_schema("scan.recorded.v1")).unwrap();
    for (field, bad) in [
        ("confidence", serde_json::json!(1.5)),
        ("image_sha256", serde_json::json!("XYZ")),
        ("category", serde_json::json!("cardboard")),
        ("item_name", serde_json::json!("")),
    ] {
        let mut sample = scan.clone();
        sample[field] = bad;
        assert!(!validator.is_valid(&sample), "schema accepted bad {field}");
        let err = EventData::from_parts("scan.recorded", 1, sample).unwrap_err();
        assert_eq!(err.code(), "schema_violation", "{field}: {err}");
    }
    scan.as_object_mut().unwrap().remove("user_id");
    assert!(!validator.is_valid(&scan));
    assert_eq!(EventData::from_parts("scan.recorded", 1, scan).unwrap_err().code(), "schema_violation");
}

#[test]
fn unknown_types_versions_and_garbage_are_told_apart() {
    let code = |bytes: &[u8]| Event::decode(bytes).unwrap_err().code();
    assert_eq!(code(b"{not json"), "malformed_envelope");
    assert_eq!(code(br#"{"type":"user.deleted"}"#), "malformed_envelope");
    let envelope = |t: &str, v: u32| {
        serde_json::to_vec(&serde_json::json!({
            "id": Uuid::now_v7(), "type": t, "version": v, "source": "x", "aggregate_type": "user",
            "aggregate_id": Uuid::now_v7(), "occurred_at": "2026-11-22T03:00:00Z",
            "data": {"user_id": Uuid::now_v7()}
        }))
        .unwrap()
    };
    assert_eq!(code(&envelope("user.exploded", 1)), "unknown_type");
    assert_eq!(code(&envelope("user.deleted", 9)), "unsupported_version");
    assert!(Event::decode(&envelope("user.deleted", 1)).is_ok());
}

#[test]
fn recycle_completed_v1_upcasts_to_the_v2_it_means() {
    let (recycle, user) = (Uuid::now_v7(), Uuid::now_v7());
    let v1 = |position: serde_json::Value| {
        let mut data = serde_json::json!({"recycle_id": recycle, "user_id": user, "category": "glass"});
        data.as_object_mut().unwrap().extend(position.as_object().unwrap().clone());
        let valid = jsonschema::validator_for(&committed_schema("recycle.completed.v1")).unwrap().is_valid(&data);
        let decoded = EventData::from_parts("recycle.completed", 1, data);
        assert_eq!(valid, decoded.is_ok(), "the v1 schema and the upcaster agree: {decoded:?}");
        decoded
    };
    let v2 = |location: Option<GeoPoint>| {
        EventData::from(RecycleCompleted {
            recycle_id: recycle,
            user_id: user,
            category: Category::Glass,
            bin_id: None,
            center_id: None,
            location,
        })
    };
    let seoul = GeoPoint { latitude: 37.5665, longitude: 126.978 };
    assert_eq!(v1(serde_json::json!({"latitude": 37.5665, "longitude": 126.978})).unwrap(), v2(Some(seoul)));
    assert_eq!(v1(serde_json::json!({})).unwrap(), v2(None));
    assert_eq!(v1(serde_json::json!({"latitude": 37.5665})).unwrap(), v2(None), "half a position locates nothing");
    let err = v1(serde_json::json!({"latitude": 91.0, "longitude": 0.0})).unwrap_err();
    assert_eq!(err.code(), "schema_violation");
    assert_eq!(v2(None).version(), 2, "new events are written as v2");

    let v2_schema = jsonschema::validator_for(&committed_schema("recycle.completed.v2")).unwrap();
    let half =
        serde_json::json!({"recycle_id": recycle, "user_id": user, "category": "glass", "location": {"latitude": 1.0}});
    assert!(!v2_schema.is_valid(&half), "v2 cannot carry half a position");
    assert_eq!(EventData::from_parts("recycle.completed", 2, half).unwrap_err().code(), "schema_violation");
    assert_eq!(
        EventData::from_parts("recycle.completed", 3, serde_json::json!({})).unwrap_err().code(),
        "unsupported_version"
    );
}

/// `docs/asyncapi.yaml` is generated from the catalogue; it must equal what the code produces.
#[test]
fn the_committed_asyncapi_document_is_generated_from_the_catalogue() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/asyncapi.yaml");
    let generated = events::contract::asyncapi(&schemas());
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        let header = "# Generated from the `events` crate (events::contract::asyncapi); do not edit.\n\
                      # Regenerate with: UPDATE_SCHEMAS=1 cargo test -p events\n";
        std::fs::write(&path, format!("{header}{}", serde_yaml::to_string(&generated).unwrap())).unwrap();
    }
    let text = std::fs::read_to_string(&path).expect("docs/asyncapi.yaml; run UPDATE_SCHEMAS=1 cargo test -p events");
    let committed: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(committed, generated, "docs/asyncapi.yaml is out of date; run UPDATE_SCHEMAS=1 cargo test -p events");
    // One message per type and version the consumers accept, each naming its routing key.
    let messages = generated["components"]["messages"].as_object().unwrap();
    for (stem, _) in schemas() {
        let key = stem.replace('.', "_");
        let (event_type, _) = stem.rsplit_once(".v").unwrap();
        assert_eq!(messages[&key]["bindings"]["amqp"]["messageType"], event_type, "{stem}");
    }
    assert_eq!(messages.len(), schemas().len() + 1, "every type and version, and the parked message");
}

/// Published schemas carry an `$id`, use JSON Schema's own formats only, and the envelope's
/// schema checks `data` against the schema of its `type` and `version`.
#[test]
fn published_schemas_are_self_describing_and_the_envelope_selects_the_data_schema() {
    let standard = ["date-time", "date", "uuid"];
    fn formats(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(f)) = m.get("format") {
                    out.push(f.clone());
                }
                m.values().for_each(|x| formats(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| formats(x, out)),
            _ => {}
        }
    }
    for (stem, schema) in all_schemas() {
        assert_eq!(schema["$id"], format!("urn:ecoeco:events:{stem}"), "{stem}");
        let mut found = Vec::new();
        formats(&schema, &mut found);
        assert!(found.iter().all(|f| standard.contains(&f.as_str())), "{stem}: {found:?}");
        assert!(!schema.to_string().contains("[`"), "{stem}: Rust doc links in descriptions");
    }
    let envelope = jsonschema::validator_for(&committed_schema("envelope")).unwrap();
    let mut wrong = Event::new(
        "test",
        Uuid::now_v7(),
        ScanRecorded {
            scan_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            category: Category::Paper,
            item_name: "box".into(),
            confidence: None,
            image_sha256: None,
            scanned_at: Utc::now(),
        }
        .into(),
    )
    .to_raw();
    assert!(envelope.is_valid(&serde_json::to_value(&wrong).unwrap()));
    wrong.data["category"] = serde_json::json!("gold");
    assert!(!envelope.is_valid(&serde_json::to_value(&wrong).unwrap()), "data is checked by type and version");
}
