//! Authorization cost (issue 29): `GET /v1/nodes` with 10,000 nodes as an admin and as a member of
//! the project they are all dedicated to (the same 10,000 rows, so the difference is the access
//! layer: the token's lookup and the project filter), and `GET /v1/instances` among 10,000
//! instances in 100 projects as an admin (all) and as a member (its 100). Medians of one run.
//!
//! Run with `bench/authz.sh` (release build of the daemon).

use std::time::{Duration, Instant};

use futures::StreamExt;
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use reqwest::StatusCode;
use serde_json::json;

const NODES: u32 = 10_000;
const RUNS: usize = 15;

async fn median(http: &reqwest::Client, url: &str, token: &str, expect: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let body = http.get(url).bearer_auth(token).send().await.expect("get").bytes().await.expect("body");
        times.push(t.elapsed());
        let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(list.as_array().map(Vec::len), Some(expect), "{url}");
    }
    times.sort();
    times[RUNS / 2]
}

#[tokio::main]
async fn main() {
    let nodes: u32 = std::env::var("BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(NODES);
    // 100 projects: more VLANs than the default range holds.
    let mut daemon = Daemon::start_with("[network]\ntenant_vlans = \"1000-1999\"\n");
    daemon.skip_document_checks();
    let http = daemon.http_client();
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

    // 100 projects; every node dedicated to the first; 100 instances in each project.
    let mut sql =
        String::from("INSERT INTO images (id, name, url, sha256, compression, created_at) VALUES (1, 'img', 'http://x/i', 'ab', 'none', 0);\n");
    for p in 1..=100 {
        let (status, body) = daemon.post("/v1/projects", &json!({"name": format!("p{p}"), "quota": 1000})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        for i in 0..100 {
            let id = (p - 1) * 100 + i + 1;
            sql.push_str(&format!(
                "INSERT INTO instances (id, name, image_id, state, created_at, updated_at, project_id) VALUES ({id}, 'i{id}', 1, 'active', 0, 0, {p});\n"
            ));
        }
    }
    sql.push_str("UPDATE nodes SET project_id = 1;\n");
    daemon.exec_sql(&sql);
    for (user, admin) in [("boss", true), ("mia", false)] {
        let (status, _) = daemon.post("/v1/users", &json!({"name": user, "admin": admin})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = daemon.call(reqwest::Method::PUT, "/v1/users/mia/roles/p1", Some(&json!({"role": "member"}))).await;
    assert_eq!(status, StatusCode::OK);
    let token = |user: &'static str| {
        let d = &daemon;
        async move { d.post("/v1/tokens", &json!({"user": user})).await.1["token"].as_str().expect("token").to_owned() }
    };
    let (admin, member) = (token("boss").await, token("mia").await);

    let url = |path: &str| format!("{}{path}", daemon.url);
    // Warm both paths once, then alternate so neither gets a warmer cache.
    median(&http, &url("/v1/nodes"), &admin, nodes as usize).await;
    let nodes_admin = median(&http, &url("/v1/nodes"), &admin, nodes as usize).await;
    let nodes_member = median(&http, &url("/v1/nodes"), &member, nodes as usize).await;
    let instances_admin = median(&http, &url("/v1/instances"), &admin, 10_000).await;
    let instances_member = median(&http, &url("/v1/instances"), &member, 100).await;
    println!("GET /v1/nodes, {nodes} nodes, admin (baseline): median {:.1} ms ({RUNS} runs)", ms(nodes_admin));
    println!("GET /v1/nodes, the same {nodes} nodes, member of their project: median {:.1} ms", ms(nodes_member));
    println!("ratio member / admin: {:.3} (goal <= 1.10)", nodes_member.as_secs_f64() / nodes_admin.as_secs_f64());
    println!("GET /v1/instances among 10000, admin (all): median {:.1} ms", ms(instances_admin));
    println!("GET /v1/instances among 10000, member (its 100): median {:.1} ms", ms(instances_member));
    println!("ratio member / admin: {:.3}", instances_member.as_secs_f64() / instances_admin.as_secs_f64());
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
