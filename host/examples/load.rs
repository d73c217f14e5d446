//! Load generator for `POST /poll`: many concurrent keep-alive connections, each sending
//! subscriptions of fresh numbers, for a fixed time. Prints subscriptions/s, the
//! returnCode mix and latency percentiles.
//!
//! ```text
//! cargo run --release -p waybill-host --example load -- \
//!     --url http://127.0.0.1:8080 --key KEY --connections 128 --seconds 10
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    url: String,
    key: String,
    company: String,
    callback: String,
    connections: usize,
    seconds: u64,
    prefix: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: "http://127.0.0.1:8080".into(),
        key: String::new(),
        company: "sandbox".into(),
        callback: "http://93.184.216.34/cb".into(),
        connections: 128,
        seconds: 10,
        prefix: format!("LD{}", std::process::id()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--key" => a.key = value()?,
            "--company" => a.company = value()?,
            "--callback" => a.callback = value()?,
            "--connections" => a.connections = value()?.parse().map_err(|e| format!("{e}"))?,
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--prefix" => a.prefix = value()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.key.is_empty() {
        return Err("--key is required".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .http1_only()
        .build()
        .expect("client");
    let endpoint = format!("{}/poll", args.url.trim_end_matches('/'));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.connections {
        let (client, endpoint, args, stop) =
            (client.clone(), endpoint.clone(), args.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut codes: BTreeMap<String, u64> = BTreeMap::new();
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let param = format!(
                    r#"{{"company":"{}","number":"{}{:04}{:08}","key":"{}","parameters":{{"callbackurl":"{}"}}}}"#,
                    args.company, args.prefix, worker, n, args.key, args.callback
                );
                let t = Instant::now();
                let code = match client
                    .post(&endpoint)
                    .form(&[("schema", "json"), ("param", param.as_str())])
                    .send()
                    .await
                {
                    Ok(resp) => match resp.json::<serde_json::Value>().await {
                        Ok(v) => v["returnCode"].as_str().unwrap_or("?").to_owned(),
                        Err(_) => "unreadable".into(),
                    },
                    Err(_) => "error".into(),
                };
                latencies.push(t.elapsed());
                *codes.entry(code).or_default() += 1;
            }
            (codes, latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies = Vec::new();
    for t in tasks {
        if let Ok((c, l)) = t.await {
            for (k, v) in c {
                *codes.entry(k).or_default() += v;
            }
            latencies.extend(l);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let total: u64 = codes.values().sum();
    let ok = codes.get("200").copied().unwrap_or(0);
    println!(
        "{total} requests in {elapsed:.1} s with {} connections: {:.0} req/s, {:.0} subscriptions/s (200)",
        args.connections,
        total as f64 / elapsed,
        ok as f64 / elapsed
    );
    println!("returnCodes: {codes:?}");
    println!(
        "latency p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
}
