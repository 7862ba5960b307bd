//! Bins and centers near a point, admin edits of places, and saved places.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{StatusCode, TestSystem};
use workers::seed::{content_id, seed};

fn names(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bins_and_centers_near_a_point_come_nearest_first_and_bad_queries_are_refused() {
    let system = TestSystem::start().await;
    assert_eq!(seed(&system.db).await.unwrap().places.0, 30);
    system
        .eventually(Duration::from_secs(30), "Seoul's places projected", || async {
            (system.count("select count(*) from read.places").await == 30).then_some(())
        })
        .await;
    // At Seoul City Hall.
    let here = system.get("/locations/bins?latitude=37.5665&longitude=126.978&radius=1000").await;
    assert_eq!(here.status, StatusCode::OK, "{}", here.body);
    let found = names(&here.body);
    assert_eq!(found[0], "서울시청 앞 분리수거함", "{found:?}");
    let distances: Vec<f64> =
        here.body["items"].as_array().unwrap().iter().map(|p| p["distance_m"].as_f64().unwrap()).collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "nearest first: {distances:?}");
    assert!(distances.iter().all(|d| *d <= 1000.0));
    assert!(found.contains(&"광화문광장 분리수거함".to_owned()), "{found:?}");
    assert!(!found.contains(&"강남역 분리수거함".to_owned()), "Gangnam is 8 km away");
    assert!(here.body["items"].as_array().unwrap().iter().all(|p| p["kind"] == "bin"));

    let batteries = system.get("/locations/bins?latitude=37.5665&longitude=126.978&radius=2000&type=hazardous").await;
    assert!(!names(&batteries.body).is_empty());
    assert!(
        batteries.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["categories"].as_array().unwrap().contains(&json!("hazardous")))
    );

    let centers = system.get("/locations/centers?latitude=37.5665&longitude=126.978&radius=20000&limit=3").await;
    let centers_found = names(&centers.body);
    assert_eq!(centers_found.len(), 3);
    assert_eq!(centers_found[0], "종로 폐가전 수거센터");
    let nothing = system.get("/locations/centers?latitude=35.1796&longitude=129.0756&radius=5000").await;
    assert_eq!(nothing.body["items"], json!([]), "no center seeded in Busan");

    for bad in [
        "/locations/bins?latitude=91&longitude=126.9",
        "/locations/bins?latitude=37.5&longitude=181",
        "/locations/bins?longitude=126.9",
        "/locations/bins?latitude=37.5&longitude=126.9&radius=0",
        "/locations/bins?latitude=37.5&longitude=126.9&radius=50000",
        "/locations/bins?latitude=37.5&longitude=126.9&limit=1000",
        "/locations/bins?latitude=37.5&longitude=126.9&type=wood",
    ] {
        system.get(bad).await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    system
        .get("/locations/bins?latitude=abc&longitude=1")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");

    // An admin moves a bin and removes another.
    let admin = system.register("placekeeper").await;
    sqlx::query("update auth.users set role = 'admin' where id = $1")
        .bind(admin.user_id)
        .execute(&system.db)
        .await
        .unwrap();
    let login = system
        .post(
            "/api/v1/auth/login",
            &json!({"email": format!("{}@example.com", admin.username), "password": "recycle2026"}),
        )
        .await;
    let token = login.body["access_token"].as_str().unwrap().to_owned();
    let city_hall = content_id("place", "city-hall-bin");
    let moved = json!({"kind": "bin", "name": "서울시청 앞 분리수거함", "address": "서울 중구 세종대로 110",
                       "latitude": 37.5600, "longitude": 126.9700, "categories": ["plastic"]});
    let res = system
        .send(reqwest::Method::PUT, &format!("/admin/locations/{city_hall}"), &admin.access_token, Some(moved.clone()))
        .await;
    res.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let res = system.send(reqwest::Method::PUT, &format!("/admin/locations/{city_hall}"), &token, Some(moved)).await;
    assert_eq!(res.body["outcome"], "changed", "{}", res.body);
    let gwanghwamun = content_id("place", "gwanghwamun-bin");
    let res = system.send(reqwest::Method::DELETE, &format!("/admin/locations/{gwanghwamun}"), &token, None).await;
    assert_eq!(res.body["outcome"], "removed");
    let created = system.send(reqwest::Method::POST, "/admin/locations", &token,
        Some(json!({"kind": "center", "name": "부산 재활용센터", "latitude": 35.18, "longitude": 129.07, "categories": ["large"]}))).await;
    assert_eq!(created.body["outcome"], "created");
    system
        .eventually(Duration::from_secs(10), "the edits in the read model", || async {
            let near = names(&system.get("/locations/bins?latitude=37.5665&longitude=126.978&radius=500").await.body);
            let busan =
                names(&system.get("/locations/centers?latitude=35.1796&longitude=129.0756&radius=5000").await.body);
            (!near.contains(&"서울시청 앞 분리수거함".to_owned())
                && !near.contains(&"광화문광장 분리수거함".to_owned())
                && busan == ["부산 재활용센터"])
            .then_some(())
        })
        .await;
    for (body, field) in [
        (json!({"kind": "bin", "name": "", "latitude": 1.0, "longitude": 1.0, "categories": ["plastic"]}), "name"),
        (
            json!({"kind": "bin", "name": "x", "latitude": 100.0, "longitude": 1.0, "categories": ["plastic"]}),
            "latitude",
        ),
        (json!({"kind": "bin", "name": "x", "latitude": 1.0, "longitude": 1.0, "categories": []}), "categories"),
    ] {
        let res = system.send(reqwest::Method::POST, "/admin/locations", &token, Some(body)).await;
        let problem = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    system
        .send(reqwest::Method::DELETE, &format!("/admin/locations/{}", uuid::Uuid::now_v7()), &token, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "place_not_found");
    // The removed bin no longer makes a recycle there pay.
    let user = system.register("recycler").await;
    let res = system
        .command(
            "/api/v1/recycles",
            &user.access_token,
            &json!({"category": "glass", "latitude": 37.5720, "longitude": 126.9769}),
        )
        .await;
    assert_eq!(res.body["reason"], "no_known_place_nearby", "{}", res.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_places_keep_one_default_and_stay_private() {
    let system = TestSystem::start().await;
    let user = system.register("homebody").await;
    let other = system.register("stranger").await;
    let add = |label: &str, is_default: bool| {
        let system = &system;
        let token = user.access_token.clone();
        let body = json!({"label": label, "latitude": 37.55, "longitude": 126.99, "is_default": is_default});
        async move { system.send(reqwest::Method::POST, "/locations/me", &token, Some(body)).await }
    };
    let home = add("집", false).await;
    assert_eq!(home.status, StatusCode::ACCEPTED, "{}", home.body);
    let home_id = home.body["saved_place_id"].as_str().unwrap().to_owned();
    let work = add("회사", true).await;
    let work_id = work.body["saved_place_id"].as_str().unwrap().to_owned();
    let gym = add("헬스장", false).await;
    let token = gym.header("x-consistency-token").unwrap();
    let mine = system.query("/api/v1/locations/me", &user.access_token, Some(&token)).await;
    let list = mine.body["items"].as_array().unwrap();
    assert_eq!(list.iter().map(|p| p["label"].as_str().unwrap()).collect::<Vec<_>>(), ["집", "회사", "헬스장"]);
    let defaults: Vec<&str> =
        list.iter().filter(|p| p["is_default"] == true).map(|p| p["label"].as_str().unwrap()).collect();
    assert_eq!(defaults, ["회사"], "the first place was the default until another was made it");

    // Make home the default again; then delete it: the oldest remaining becomes the default.
    let res = system
        .send(
            reqwest::Method::PUT,
            &format!("/locations/me/{home_id}"),
            &user.access_token,
            Some(json!({"is_default": true, "label": "우리집"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let token = res.header("x-consistency-token").unwrap();
    let mine = system.query("/api/v1/locations/me", &user.access_token, Some(&token)).await;
    let defaults: Vec<&str> = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["is_default"] == true)
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(defaults, ["우리집"]);
    let res = system.send(reqwest::Method::DELETE, &format!("/locations/me/{home_id}"), &user.access_token, None).await;
    let token = res.header("x-consistency-token").unwrap();
    let mine = system.query("/api/v1/locations/me", &user.access_token, Some(&token)).await;
    let list = mine.body["items"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|p| p["is_default"] == true).count(), 1);
    assert_eq!(list[0]["id"], work_id.as_str());
    assert_eq!(list[0]["is_default"], true);

    // Someone else's place is not mine to change; bad input is refused.
    system
        .send(reqwest::Method::DELETE, &format!("/locations/me/{work_id}"), &other.access_token, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "place_not_found");
    assert_eq!(
        system.query("/api/v1/locations/me", &other.access_token, None).await.body,
        json!({"items": [], "next_cursor": null})
    );
    for body in [
        json!({"label": "", "latitude": 37.5, "longitude": 127.0}),
        json!({"label": "x", "latitude": -91.0, "longitude": 127.0}),
        json!({"label": "x".repeat(41), "latitude": 37.5, "longitude": 127.0}),
    ] {
        system
            .send(reqwest::Method::POST, "/locations/me", &user.access_token, Some(body))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    system
        .send(
            reqwest::Method::PUT,
            &format!("/locations/me/{work_id}"),
            &user.access_token,
            Some(json!({"latitude": 37.0})),
        )
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    for i in 0..18 {
        assert_eq!(add(&format!("p{i}"), false).await.status, StatusCode::ACCEPTED);
    }
    add("one too many", false).await.assert_problem(StatusCode::CONFLICT, "too_many_places");

    // Deleting the account forgets its places.
    let deleted = system
        .http
        .delete(format!("{}/api/v1/users/me", system.command_url))
        .bearer_auth(&user.access_token)
        .json(&json!({"password": "recycle2026"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED.as_u16());
    system
        .eventually(Duration::from_secs(10), "saved places forgotten", || async {
            let left = sqlx::query_scalar::<_, i64>("select count(*) from read.saved_places where user_id = $1")
                .bind(user.user_id)
                .fetch_one(&system.db)
                .await
                .unwrap();
            let commands = sqlx::query_scalar::<_, i64>("select count(*) from app.saved_places where user_id = $1")
                .bind(user.user_id)
                .fetch_one(&system.db)
                .await
                .unwrap();
            (left == 0 && commands == 0).then_some(())
        })
        .await;
}
