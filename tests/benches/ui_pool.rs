//! Web view benchmark: the first page's weight, and the pool page (`/ui`) with 10,000 nodes
//! against the JSON listing of the same nodes (`GET /v1/nodes`) measured in the same run.
//!
//! Run with `bench/ui_pool.sh` (release build of the daemon).

use std::time::{Duration, Instant};

use futures::StreamExt;
use metalhost_tests::daemon::{Daemon, TOKEN, node_body, switch_body};
use reqwest::StatusCode;

const NODES: u32 = 10_000;
const RUNS: usize = 7;

#[tokio::main]
async fn main() {
    let nodes: u32 = std::env::var("BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(NODES);
    let daemon = Daemon::start();
    let http = daemon.http_client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let get = |path: &str| http.get(format!("{}{path}", daemon.url));

    // What a browser fetches first: the sign-in page and its two assets.
    let mut first = 0;
    for path in ["/ui/login", "/ui/assets/ui.css", "/ui/assets/ui.js"] {
        first += get(path).send().await.expect("get").bytes().await.expect("body").len();
    }

    let (status, sw) = daemon.post("/v1/switches", &switch_body("bench-sw", "pw-bench")).await;
    assert_eq!(status, StatusCode::CREATED);
    let sw = sw["id"].as_i64().expect("id");
    let created: Vec<StatusCode> = futures::stream::iter(0..nodes)
        .map(|i| {
            let body = node_body(i + 1, sw, "pw-bench");
            let d = &daemon;
            async move { d.post("/v1/nodes", &body).await.0 }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(created.iter().all(|s| *s == StatusCode::CREATED), "some enrolments failed");

    let signed_in =
        http.post(format!("{}/ui/login", daemon.url)).header("origin", &daemon.url).form(&[("token", TOKEN)]).send().await.expect("sign in");
    let cookie = signed_in.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();

    let mut json_times = Vec::new();
    let mut ui_times = Vec::new();
    let (mut json_bytes, mut ui_bytes) = (0, 0);
    for _ in 0..RUNS {
        let t = Instant::now();
        let body = get("/v1/nodes").bearer_auth(TOKEN).send().await.expect("get").bytes().await.expect("body");
        json_times.push(t.elapsed());
        json_bytes = body.len();
        let t = Instant::now();
        let response = get("/ui").header("cookie", &cookie).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.bytes().await.expect("body");
        ui_times.push(t.elapsed());
        ui_bytes = body.len();
        assert_eq!(String::from_utf8_lossy(&body).matches("<tr>").count(), nodes as usize + 1, "one row per node");
    }
    json_times.sort();
    ui_times.sort();
    let (json, ui) = (json_times[RUNS / 2], ui_times[RUNS / 2]);
    println!("first page (sign-in HTML + CSS + JS): {first} bytes");
    println!("GET /ui with {nodes} nodes: median {:.1} ms, max {:.1} ms, {ui_bytes} bytes ({RUNS} runs)", ms(ui), ms(ui_times[RUNS - 1]));
    println!("GET /v1/nodes (baseline, same nodes): median {:.1} ms, max {:.1} ms, {json_bytes} bytes", ms(json), ms(json_times[RUNS - 1]));
    println!("ratio /ui / /v1/nodes: time {:.2}, bytes {:.2}", ui.as_secs_f64() / json.as_secs_f64(), ui_bytes as f64 / json_bytes as f64);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
