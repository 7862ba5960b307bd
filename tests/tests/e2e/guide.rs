//! The recycling guide: shipped content, search, admin edits, helpful marks and statistics.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{Registered, StatusCode, TestSystem};
use workers::seed::{content_id, seed};

/// Loads the shipped content and waits until the guide projection has all of it.
async fn seeded(system: &TestSystem) {
    let report = seed(&system.db).await.unwrap();
    assert_eq!(report.items.0, 104);
    system
        .eventually(Duration::from_secs(30), "the guide projected", || async {
            let items = system.count("select count(*) from read.guide_items where not removed").await;
            let faqs = system.count("select count(*) from read.guide_faqs").await;
            let regions = system.count("select count(*) from read.guide_regions").await;
            (items == 104 && faqs == 22 && regions == 17).then_some(())
        })
        .await;
}

async fn admin(system: &TestSystem) -> String {
    let admin = system.register("guidekeeper").await;
    system.promote_to_admin(&admin).await
}

fn names(result: &Value) -> Vec<String> {
    result["items"].as_array().unwrap().iter().map(|i| i["name_ko"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_guide_serves_categories_items_rules_and_questions() {
    let system = TestSystem::start().await;
    seeded(&system).await;
    assert_eq!(seed(&system.db).await.unwrap().events(), 0, "loading the same content again writes nothing");

    let categories = system.get("/recycle/categories").await;
    let list = categories.body["items"].as_array().unwrap();
    assert_eq!(list.len(), 9);
    assert!(list.iter().all(|c| c["item_count"].as_i64().unwrap() > 0), "{}", categories.body);
    assert_eq!(list.iter().map(|c| c["item_count"].as_i64().unwrap()).sum::<i64>(), 104);
    assert_eq!(categories.body["next_cursor"], serde_json::Value::Null);
    let plastic = list.iter().find(|c| c["code"] == "plastic").unwrap();
    assert_eq!((plastic["name_ko"].as_str(), plastic["name_en"].as_str()), (Some("플라스틱"), Some("Plastic")));

    // Every glass item once, in Korean order, three at a time.
    let glass_count =
        system.count("select count(*) from read.guide_items where category = 'glass' and not removed").await;
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/recycle/items?category=glass&limit=3&cursor={c}"),
            None => "/recycle/items?category=glass&limit=3".to_owned(),
        };
        let page = system.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body["items"].as_array().unwrap().iter().all(|i| i["category"] == "glass"));
        seen.extend(names(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, glass_count);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "Korean alphabetical order");

    let pet = system.get(&format!("/recycle/items/{}", content_id("item", "pet-bottle"))).await;
    assert_eq!(pet.body["name_ko"], "투명 페트병");
    assert_eq!(pet.body["category"], "plastic");
    assert!(pet.body["disposal"].as_str().unwrap().contains("라벨"));
    assert!(!pet.body["donts"].as_array().unwrap().is_empty());
    system
        .get(&format!("/recycle/items/{}", uuid::Uuid::now_v7()))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "item_not_found");
    system.get("/recycle/items/not-a-uuid").await.assert_problem(StatusCode::BAD_REQUEST, "invalid_path");
    system
        .get("/recycle/items?category=wood")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    system.get("/recycle/items?limit=0").await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    system.get("/recycle/items?cursor=xyz").await.assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");

    // Regional rules by code, English or Korean name.
    for region in ["seoul", "Seoul", "%EC%84%9C%EC%9A%B8%ED%8A%B9%EB%B3%84%EC%8B%9C"] {
        let rules = system.get(&format!("/recycle/rules/{region}")).await;
        assert_eq!(rules.body["name_ko"], "서울특별시", "{region}: {}", rules.body);
        assert_eq!(rules.body["rules"].as_array().unwrap().len(), 9);
    }
    let codes: Vec<String> =
        sqlx::query_scalar("select code from read.guide_regions").fetch_all(&system.db).await.unwrap();
    for code in &codes {
        assert_eq!(system.get(&format!("/recycle/rules/{code}")).await.status, StatusCode::OK, "{code}");
    }
    let missing = system.get("/recycle/rules/atlantis").await;
    let problem = missing.assert_problem(StatusCode::NOT_FOUND, "region_not_found");
    assert!(problem["detail"].as_str().unwrap().contains("jeju"), "the problem lists the known regions");

    let faq = system.get("/recycle/faq").await;
    let questions = faq.body["items"].as_array().unwrap();
    assert_eq!(questions.len(), 22);
    assert_eq!(questions[0]["question"], "분리수거를 왜 해야 하나요?", "in their order");
    let glass_faq = system.get("/recycle/faq?category=glass").await;
    assert!(glass_faq.body["items"].as_array().unwrap().iter().all(|q| q["category"] == "glass"));
    assert_eq!(glass_faq.body["items"].as_array().unwrap().len(), 2);
    let one = system.get(&format!("/recycle/faq/{}", questions[1]["id"].as_str().unwrap())).await;
    assert_eq!(one.body["question"], questions[1]["question"]);
    system
        .get(&format!("/recycle/faq/{}", uuid::Uuid::now_v7()))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "faq_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_understands_korean_english_partial_words_typos_and_keywords() {
    let system = TestSystem::start().await;
    seeded(&system).await;
    let search = |q: &'static str| {
        let system = &system;
        async move { system.get(&format!("/recycle/search?q={}", urlencode(q))).await }
    };
    let first = |r: &tests::Response| r.body["items"][0]["name_ko"].as_str().unwrap_or_default().to_owned();

    assert_eq!(first(&search("페트병").await), "투명 페트병", "a Korean query");
    assert_eq!(first(&search("PET bottle").await), "투명 페트병", "an English query, exact name first");
    assert!(names(&search("페트").await.body).contains(&"투명 페트병".to_owned()), "a partial word");
    let typo = search("botle").await;
    assert!(names(&typo.body).iter().any(|n| n == "투명 페트병" || n == "유리병"), "a typo: {}", typo.body);
    assert_eq!(first(&search("생수병").await), "투명 페트병", "a keyword-only match");
    assert_eq!(first(&search("tetra pak").await), "우유팩(종이팩)", "an English keyword");
    assert_eq!(first(&search("네스프레소").await), "커피 캡슐", "a brand as keyword");
    assert_eq!(first(&search("스티로폼 상자").await), "스티로폼 상자", "two Korean words");
    // Korean as it is typed: one jamo off, initial consonants only, spacing, everyday names.
    let slip = search("페트벙").await;
    assert!(
        names(&slip.body)[..3.min(names(&slip.body).len())].contains(&"투명 페트병".to_owned()),
        "a vowel slip in the last syllable, in the top 3 (`페트병 뚜껑` may rank first): {}",
        slip.body
    );
    assert_eq!(first(&search("건전쥐").await), "폐건전지", "a vowel slip");
    assert_eq!(first(&search("ㅍㅌㅂ").await), "투명 페트병", "initial consonants");
    assert_eq!(first(&search("스티로폼상자").await), "스티로폼 상자", "without the space");
    assert_eq!(first(&search("밧데리").await), "폐건전지", "a colloquial spelling (alias)");
    assert_eq!(first(&search("펫트병").await), "투명 페트병", "a common misspelling (alias)");
    let scores: Vec<f64> =
        search("캔").await.body["items"].as_array().unwrap().iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");

    let posted = system
        .http
        .post(format!("{}/api/v1/recycle/items/search", system.query_url))
        .json(&json!({"q": "botle"}))
        .send()
        .await
        .unwrap();
    assert_eq!(tests::Response::read(posted).await.body, typo.body, "POST answers like GET");
    let only_glass = system.get("/recycle/search?q=bottle&category=glass").await;
    assert!(only_glass.body["items"].as_array().unwrap().iter().all(|i| i["category"] == "glass"));
    assert!(!only_glass.body["items"].as_array().unwrap().is_empty());

    system.get("/recycle/search?q=").await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    system.get("/recycle/search").await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let huge = "가".repeat(101);
    system
        .get(&format!("/recycle/search?q={}", urlencode(&huge)))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    system
        .get("/recycle/search?q=can&limit=51")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let nothing = system.get("/recycle/search?q=zzqqxx").await;
    assert_eq!(nothing.status, StatusCode::OK);
    assert_eq!(nothing.body["items"], json!([]));
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_edits_reach_the_guide_and_its_cache_and_others_are_refused() {
    let system = TestSystem::start().await;
    seeded(&system).await;
    let admin = admin(&system).await;
    let user = system.register("reader").await;
    let id = content_id("item", "battery");
    let path = format!("/recycle/items/{id}");
    let before = system.get(&path).await; // cached now
    assert_eq!(before.body["name_ko"], "폐건전지");

    let edit = json!({"category": "hazardous", "name_ko": "폐건전지", "name_en": "Battery",
                      "disposal": "폐건전지 전용 수거함에 넣으세요.", "keywords": ["건전지", "battery"]});
    let put = |body: Value, bearer: String| {
        let system = &system;
        let path = format!("/admin/recycle/items/{id}");
        async move { system.send(reqwest::Method::PUT, &path, &bearer, Some(body)).await }
    };
    put(edit.clone(), user.access_token.clone()).await.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let res = put(edit.clone(), admin.clone()).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.body["outcome"], "changed");
    let token = res.header("x-consistency-token").unwrap();
    let fresh = system.query(&format!("/api/v1{path}"), &admin, Some(&token)).await;
    assert_eq!(fresh.body["disposal"], "폐건전지 전용 수거함에 넣으세요.");
    assert_eq!(fresh.header("x-consistency").as_deref(), Some("fresh"));
    system
        .eventually(Duration::from_secs(10), "the cached answer invalidated", || async {
            (system.get(&path).await.body["disposal"] == "폐건전지 전용 수거함에 넣으세요.").then_some(())
        })
        .await;
    assert_eq!(put(edit.clone(), admin.clone()).await.body["outcome"], "unchanged", "same content records nothing");

    let bad = put(
        json!({"category": "hazardous", "name_ko": "", "name_en": "x", "disposal": "x", "keywords": [""]}),
        admin.clone(),
    )
    .await;
    let problem = bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name_ko", "keywords"]);
    let unknown = system
        .send(
            reqwest::Method::PUT,
            &format!("/admin/recycle/items/{}", uuid::Uuid::now_v7()),
            &admin,
            Some(edit.clone()),
        )
        .await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "item_not_found");
    let wrong_category =
        put(json!({"category": "wood", "name_ko": "a", "name_en": "a", "disposal": "a"}), admin.clone()).await;
    assert!(wrong_category.status.is_client_error(), "{}", wrong_category.body);

    // A new item is found by search; a removed one is gone everywhere.
    let created = system
        .send(
            reqwest::Method::POST,
            "/admin/recycle/items",
            &admin,
            Some(json!({"category": "plastic", "name_ko": "치약 튜브", "name_en": "Toothpaste tube",
                    "disposal": "내용물을 짜내고 일반쓰레기로 배출합니다.", "keywords": ["치약"]})),
        )
        .await;
    assert_eq!(created.body["outcome"], "created", "{}", created.body);
    let new_id = created.body["id"].as_str().unwrap().to_owned();
    system
        .eventually(Duration::from_secs(10), "the new item searchable", || async {
            let hits = system.get("/recycle/search?q=%EC%B9%98%EC%95%BD").await;
            (hits.body["items"][0]["id"] == new_id.as_str()).then_some(())
        })
        .await;
    let removed = system.send(reqwest::Method::DELETE, &format!("/admin/recycle/items/{id}"), &admin, None).await;
    assert_eq!(removed.body["outcome"], "removed");
    let token = removed.header("x-consistency-token").unwrap();
    system
        .query(&format!("/api/v1{path}"), &admin, Some(&token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "item_not_found");
    system
        .eventually(Duration::from_secs(10), "gone from lists and counts", || async {
            let cats = system.get("/recycle/categories").await.body;
            let total: i64 = cats["items"].as_array()?.iter().map(|c| c["item_count"].as_i64().unwrap()).sum();
            let hits = system.get("/recycle/search?q=battery").await.body;
            let still = hits["items"].as_array()?.iter().any(|i| i["id"] == id.to_string().as_str());
            (total == 104 && !still).then_some(())
        })
        .await;
    system
        .send(reqwest::Method::DELETE, &format!("/admin/recycle/items/{id}"), &admin, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "item_not_found");

    // Questions and regional rules.
    let faq = system.send(reqwest::Method::POST, "/admin/recycle/faq", &admin,
        Some(json!({"question": "아이스팩은 어떻게 버리나요?", "answer": "젤형은 일반쓰레기로 버립니다.", "position": 99}))).await;
    assert_eq!(faq.status, StatusCode::ACCEPTED);
    let token = faq.header("x-consistency-token").unwrap();
    let shown =
        system.query(&format!("/api/v1/recycle/faq/{}", faq.body["id"].as_str().unwrap()), &admin, Some(&token)).await;
    assert_eq!(shown.body["answer"], "젤형은 일반쓰레기로 버립니다.");
    system
        .send(
            reqwest::Method::POST,
            "/admin/recycle/faq",
            &admin,
            Some(json!({"question": " ", "answer": "a", "position": -1})),
        )
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let rules = json!({"name_ko": "서울특별시", "name_en": "Seoul", "schedule": "오후 8시 ~ 자정",
                       "rules": [{"category": "food", "rule": "RFID 수거함"}]});
    let res = system.send(reqwest::Method::PUT, "/admin/recycle/rules/seoul", &admin, Some(rules.clone())).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    system
        .eventually(Duration::from_secs(10), "Seoul's new rules", || async {
            let r = system.get("/recycle/rules/seoul").await.body;
            (r["schedule"] == "오후 8시 ~ 자정" && r["rules"].as_array()?.len() == 1).then_some(())
        })
        .await;
    system
        .send(reqwest::Method::PUT, "/admin/recycle/rules/atlantis", &admin, Some(rules))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "region_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_counts_as_helpful_once_per_user() {
    let system = TestSystem::start().await;
    seeded(&system).await;
    let faq_id = content_id("faq", "faq-03");
    let path = format!("/api/v1/recycle/faq/{faq_id}/helpful");
    let mark = |user: &Registered| {
        let system = &system;
        let (path, token) = (path.clone(), user.access_token.clone());
        async move { system.command(&path, &token, &json!({})).await }
    };
    let first = system.register("grateful").await;
    let res = mark(&first).await;
    assert_eq!((res.status, res.body["counted"].clone()), (StatusCode::ACCEPTED, json!(true)));
    let token = res.header("x-consistency-token").unwrap();
    let again = mark(&first).await;
    assert_eq!((again.status, again.body["counted"].clone()), (StatusCode::OK, json!(false)), "once per user");
    let shown = system.query(&format!("/api/v1/recycle/faq/{faq_id}"), &first.access_token, Some(&token)).await;
    assert_eq!(shown.body["helpful"], 1);
    let second = system.register("alsograteful").await;
    let token = mark(&second).await.header("x-consistency-token").unwrap();
    let shown = system.query(&format!("/api/v1/recycle/faq/{faq_id}"), &second.access_token, Some(&token)).await;
    assert_eq!(shown.body["helpful"], 2);

    let unknown = system
        .command(&format!("/api/v1/recycle/faq/{}/helpful", uuid::Uuid::now_v7()), &first.access_token, &json!({}))
        .await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "faq_not_found");
    let anonymous = system.http.post(format!("{}{path}", system.command_url)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED.as_u16());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_count_what_people_scan_and_recycle_by_category() {
    let system = TestSystem::start().await;
    let a = system.register("counter").await;
    let b = system.register("recounter").await;
    for (user, category) in [(&a, "plastic"), (&b, "plastic"), (&a, "paper")] {
        let res =
            system.command("/api/v1/scans", &user.access_token, &json!({"category": category, "item_name": "x"})).await;
        assert_eq!(res.status, StatusCode::ACCEPTED);
    }
    let res = system.command("/api/v1/recycles", &b.access_token, &json!({"category": "glass"})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    for period in ["weekly", "monthly", "all-time"] {
        let stats = system
            .eventually(Duration::from_secs(15), "statistics", || async {
                let s = system.get(&format!("/recycle/stats?period={period}")).await.body;
                (s["total_scans"] == 3 && s["total_recycles"] == 1).then_some(s)
            })
            .await;
        let categories = stats["categories"].as_array().unwrap();
        assert_eq!(categories.len(), 9, "every category, zeros included");
        assert_eq!(categories[0], json!({"category": "plastic", "scans": 2, "recycles": 0}), "most scanned first");
        let glass = categories.iter().find(|c| c["category"] == "glass").unwrap();
        assert_eq!(glass["recycles"], 1);
        // The same key format as the leaderboards: `2026-W47`, `2026-11`, `all`.
        let key = stats["period_key"].as_str().unwrap();
        let expected_shape = match period {
            "weekly" => key.len() == 8 && key.contains("-W"),
            "monthly" => key.len() == 7 && !key.contains('W'),
            _ => key == "all",
        };
        assert!(expected_shape, "{period}: {key}");
    }
    system
        .get("/recycle/stats?period=daily")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

/// Great-circle distance in metres (haversine), to pick the expected nearest bin independently.
fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().asin()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_answers_what_to_do_with_the_item_and_where() {
    let system = TestSystem::start().await;
    seeded(&system).await;
    system
        .eventually(Duration::from_secs(30), "the places projected", || async {
            (system.count("select count(*) from read.places where not removed").await == 30).then_some(())
        })
        .await;
    let content: Value = serde_json::from_str(workers::seed::CONTENT).unwrap();
    let user = system.register("guided").await;
    let token = &user.access_token;

    // No default place yet: the item only.
    let scan = system.command("/api/v1/scans", token, &json!({"category": "plastic", "item_name": "페트병"})).await;
    assert_eq!(scan.status, StatusCode::ACCEPTED);
    let guidance = &scan.body["guidance"];
    assert_eq!(guidance["item"]["name_ko"], "투명 페트병", "{}", scan.body);
    assert!(guidance["item"]["disposal"].as_str().unwrap().contains("라벨"), "how to dispose: {guidance}");
    assert!(!guidance["item"]["donts"].as_array().unwrap().is_empty(), "what not to do");
    assert_eq!(guidance["region_rule"], Value::Null);
    assert_eq!(guidance["nearest_bin"], Value::Null);

    // A default place in Mapo: Seoul's rule for the category and the nearest bin that takes it.
    let home = (37.5563, 126.9220);
    let saved = system
        .command(
            "/api/v1/locations/me",
            token,
            &json!({"label": "집", "latitude": home.0, "longitude": home.1, "address": "서울 마포구 와우산로 94"}),
        )
        .await;
    assert_eq!(saved.status, StatusCode::ACCEPTED);
    let token_header = saved.headers["x-consistency-token"].to_str().unwrap().to_owned();
    system.query("/api/v1/locations/me", token, Some(&token_header)).await;
    let scan = system.command("/api/v1/scans", token, &json!({"category": "plastic", "item_name": "펫트병"})).await;
    let guidance = scan.body["guidance"].clone();
    assert_eq!(guidance["item"]["name_ko"], "투명 페트병", "an alias finds the item: {guidance}");
    let seoul = content["regions"].as_array().unwrap().iter().find(|r| r["code"] == "seoul").unwrap();
    let rule = seoul["rules"].as_array().unwrap().iter().find(|r| r["category"] == "plastic").unwrap();
    assert_eq!(guidance["region_rule"]["region"], "seoul");
    assert_eq!(guidance["region_rule"]["rule"], rule["rule"]);
    let expected = content["places"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "bin" && p["categories"].as_array().unwrap().contains(&json!("plastic")))
        .min_by(|a, b| {
            let d = |p: &Value| metres(home, (p["latitude"].as_f64().unwrap(), p["longitude"].as_f64().unwrap()));
            d(a).total_cmp(&d(b))
        })
        .unwrap();
    assert_eq!(guidance["nearest_bin"]["name"], expected["name"], "{guidance}");
    let distance = guidance["nearest_bin"]["distance_m"].as_f64().unwrap();
    let haversine = metres(home, (expected["latitude"].as_f64().unwrap(), expected["longitude"].as_f64().unwrap()));
    assert!((distance - haversine).abs() < haversine * 0.01 + 1.0, "{distance} m vs {haversine} m");

    // The same answer later, from the query API, for this scan; nobody else's scan.
    let scan_id = scan.body["scan_id"].as_str().unwrap();
    let scan_token = scan.headers["x-consistency-token"].to_str().unwrap().to_owned();
    let again = system.query(&format!("/api/v1/scans/{scan_id}/guidance"), token, Some(&scan_token)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, guidance);
    let stranger = system.register("stranger").await;
    system
        .query(&format!("/api/v1/scans/{scan_id}/guidance"), &stranger.access_token, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "scan_not_found");
}
