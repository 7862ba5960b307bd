//! Avatars (issue #18, point 1): uploads checked from their bytes, renditions without metadata,
//! the previous files removed, both storage back ends, a deleted person's files gone.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStore;
use serde_json::json;
use tests::{Options, Registered, Response, StatusCode, TestSystem, images, s3::S3Server};

/// Where a test can see the system's stored files.
fn store(system: &TestSystem) -> platform::storage::Store {
    platform::storage::open(&system.settings).unwrap()
}

/// Every object name in the store.
async fn stored(system: &TestSystem) -> Vec<String> {
    let mut names: Vec<String> =
        store(system).list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    names.sort();
    names
}

/// `POST /users/me/avatar` with one part named `part`.
async fn upload_as(
    system: &TestSystem,
    user: &Registered,
    part: &str,
    bytes: Vec<u8>,
    file_name: &str,
    mime: &str,
) -> Response {
    let file = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()).mime_str(mime).unwrap();
    let form = reqwest::multipart::Form::new().part(part.to_owned(), file);
    let req =
        system.http.post(format!("{}/api/v1/users/me/avatar", system.command_url)).bearer_auth(&user.access_token);
    Response::read(req.multipart(form).send().await.unwrap()).await
}

async fn upload(system: &TestSystem, user: &Registered, bytes: Vec<u8>, file_name: &str, mime: &str) -> Response {
    upload_as(system, user, "image", bytes, file_name, mime).await
}

/// The profile's `avatar_url` once the upload answered by `res` is processed.
async fn avatar_after(system: &TestSystem, user: &Registered, res: &Response) -> String {
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert!(res.body["upload_id"].as_str().is_some(), "{}", res.body);
    let token = res.header("x-consistency-token").unwrap();
    let me = system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
    assert_eq!(me.header("x-consistency").as_deref(), Some("fresh"));
    let url = me.body["avatar_url"].as_str().unwrap().to_owned();
    assert!(url.contains(res.body["upload_id"].as_str().unwrap()), "{url} names the upload");
    url
}

/// GET of an avatar URL, through this test's query-api.
async fn fetch(system: &TestSystem, url: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let rest = url.strip_prefix(&system.settings.avatar_base_url).expect("avatar_url under AVATAR_BASE_URL");
    let mut req = system.http.get(format!("{}/api/v1/avatars{rest}", system.query_url));
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    req.send().await.unwrap()
}

/// Fetches a rendition and checks what a client sees: a square JPEG of `size`, cacheable, and
/// no byte of `secret` (the upload's metadata).
async fn check_rendition(system: &TestSystem, url: &str, size: u32, secret: &str) {
    let res = fetch(system, url, None).await;
    assert_eq!(res.status(), StatusCode::OK, "{url}");
    let headers = res.headers().clone();
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["cache-control"], "public, max-age=86400, immutable");
    let bytes = res.bytes().await.unwrap();
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((image.width(), image.height()), (size, size));
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!has(secret.as_bytes()), "the upload's metadata survived in {url}");
    assert!(!has(b"Exif"), "an EXIF block in {url}");
    let etag = headers["etag"].to_str().unwrap();
    assert_eq!(fetch(system, url, Some(etag)).await.status(), StatusCode::NOT_MODIFIED);
}

/// The whole life of an avatar on one store: upload, renditions, replacement (old files gone),
/// a WebP, an avatar_url set by hand (uploaded files gone), deletion of the account (every file gone).
async fn avatar_life(system: &TestSystem) {
    let user = system.register("avatar").await;
    let secret = "GPS 37.5665N 126.9780E, Mina's home";
    // The name and the declared type lie: the format comes from the bytes.
    let res = upload(system, &user, images::jpeg_with_exif(900, 600, secret), "cat.png", "text/plain").await;
    let first = avatar_after(system, &user, &res).await;
    assert!(first.ends_with("/512.jpg"), "{first}");
    check_rendition(system, &first, 512, secret).await;
    let first_small = first.replace("/512.jpg", "/128.jpg");
    check_rendition(system, &first_small, 128, secret).await;
    let upload_id = res.body["upload_id"].as_str().unwrap();
    assert_eq!(
        stored(system).await,
        [
            format!("avatars/{}/{upload_id}/128.jpg", user.user_id),
            format!("avatars/{}/{upload_id}/512.jpg", user.user_id)
        ],
        "the renditions only: the original upload is deleted"
    );
    let export = system.query("/api/v1/users/me/export", &user.access_token, None).await;
    assert_eq!(export.body["avatar"]["upload_id"], upload_id);
    assert_eq!(export.body["avatar"]["files"], json!([first, first_small]), "the export links the files");

    let text = "secret-comment-in-a-png";
    let res = upload(system, &user, images::png_with_text(300, 500, text), "me.png", "image/png").await;
    let second = avatar_after(system, &user, &res).await;
    check_rendition(system, &second, 512, text).await;
    for old in [&first, &first_small] {
        assert_eq!(
            fetch(system, old, None).await.status(),
            StatusCode::NOT_FOUND,
            "the replaced avatar's files are gone"
        );
    }
    let res = upload(system, &user, images::webp(64, 64), "me.webp", "image/webp").await;
    let third = avatar_after(system, &user, &res).await;
    check_rendition(system, &third.replace("/512.jpg", "/128.jpg"), 128, "Mina").await;
    assert_eq!(stored(system).await.len(), 2, "one avatar's renditions: {:?}", stored(system).await);

    // An avatar set by hand replaces the uploaded one, whose files go.
    let res = system
        .send(
            reqwest::Method::PATCH,
            "/users/me",
            &user.access_token,
            Some(json!({"avatar_url": "https://example.com/me.png"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    system
        .eventually(Duration::from_secs(15), "the replaced upload's files deleted", || async {
            stored(system).await.is_empty().then_some(())
        })
        .await;

    // A fresh upload, then the account's deletion: nothing of the person is left in storage.
    let res = upload(system, &user, images::webp(200, 200), "me.webp", "image/webp").await;
    let last = avatar_after(system, &user, &res).await;
    let res = system
        .send(reqwest::Method::DELETE, "/users/me", &user.access_token, Some(json!({"password": "recycle2026"})))
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    system
        .eventually(Duration::from_secs(15), "a deleted person's files removed", || async {
            stored(system).await.is_empty().then_some(())
        })
        .await;
    assert_eq!(fetch(system, &last, None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatars_in_a_local_directory() {
    let system = TestSystem::start().await;
    assert!(system.settings.storage_url.starts_with("file:"));
    avatar_life(&system).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatars_in_an_s3_compatible_store() {
    let s3 = S3Server::start().await;
    s3.create_bucket("ecoeco-media").await;
    let system = TestSystem::start_with(Options {
        s3: Some(("s3://ecoeco-media/test".into(), s3.settings())),
        ..Default::default()
    })
    .await;
    avatar_life(&system).await;
    // The files really went through the S3 server: one more upload is visible in the bucket.
    let user = system.register("s3check").await;
    let res = upload(&system, &user, images::webp(32, 32), "x.webp", "image/webp").await;
    avatar_after(&system, &user, &res).await;
    let listing =
        reqwest::get(format!("{}/ecoeco-media?list-type=2", s3.endpoint)).await.unwrap().text().await.unwrap();
    assert!(listing.contains(&format!("test/avatars/{}/", user.user_id)), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_clear_errors_and_leave_nothing_behind() {
    let system =
        TestSystem::start_with(Options { configure: |s| s.avatar_max_bytes = 64 * 1024, ..Default::default() }).await;
    let user = system.register("bad").await;
    let before = system.query("/api/v1/users/me", &user.access_token, Some(&user.consistency_token)).await;

    // Not multipart at all.
    system
        .command("/api/v1/users/me/avatar", &user.access_token, &json!({"image": "aGVsbG8="}))
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    // A text file named like a photo.
    upload(&system, &user, b"just some text, not a picture".to_vec(), "photo.jpg", "image/jpeg")
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    // A GIF is an image, but not one accepted.
    upload(&system, &user, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(), "a.gif", "image/gif")
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    // A decompression bomb: 60,000 × 60,000 pixels declared in a 70-byte file.
    let bomb = images::bomb_png(60_000, 60_000);
    assert!(bomb.len() < 100);
    let res = upload(&system, &user, bomb, "bomb.png", "image/png").await;
    let body = res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "image");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("60000×60000"), "{body}");
    // Larger than AVATAR_MAX_BYTES.
    upload(&system, &user, images::png_with_text(400, 400, &"x".repeat(80_000)), "big.png", "image/png")
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // The wrong part name, and no part at all.
    upload_as(&system, &user, "file", images::webp(8, 8), "a.webp", "image/webp")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let empty = reqwest::multipart::Form::new().text("note", "hi");
    let req =
        system.http.post(format!("{}/api/v1/users/me/avatar", system.command_url)).bearer_auth(&user.access_token);
    Response::read(req.multipart(empty).send().await.unwrap())
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Without a token.
    let res = system.http.post(format!("{}/api/v1/users/me/avatar", system.command_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A PNG whose header is sound but whose data is cut short passes the upload's checks and is
    // refused by the worker: the profile keeps its avatar, and the upload is deleted.
    let whole = images::png_with_text(200, 200, "cut");
    let res = upload(&system, &user, whole[..whole.len() / 3].to_vec(), "cut.png", "image/png").await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let token = res.header("x-consistency-token").unwrap();
    let after = system.query("/api/v1/users/me", &user.access_token, Some(&token)).await;
    assert_eq!(after.header("x-consistency").as_deref(), Some("fresh"));
    assert_eq!(after.body["avatar_url"], before.body["avatar_url"]);
    assert_eq!(stored(&system).await, Vec::<String>::new(), "nothing left of refused uploads");
    let workers = system.workers_url.clone().unwrap();
    let refused = tests::scrape(&system.http, &workers, "avatar_uploads_total", &["outcome=\"rejected\""]).await;
    assert_eq!(refused, Some(1.0));
}

/// The worker checks again what command-api checked, before allocating anything: an upload
/// that reached storage some other way is refused the same.
#[test]
fn the_worker_refuses_a_bomb_without_decoding_it() {
    use platform::avatars::{Refusal, renditions};
    let refused = renditions(&images::bomb_png(60_000, 60_000), 25_000_000);
    assert!(matches!(refused, Err(Refusal::TooManyPixels { width: 60_000, height: 60_000, .. })), "{refused:?}");
    // Within the pixel budget but past the longest side allowed.
    assert!(matches!(renditions(&images::bomb_png(20_000, 10), 25_000_000), Err(Refusal::TooManyPixels { .. })));
}
