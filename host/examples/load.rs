//! Load generator for subscriptions: many concurrent keep-alive connections, each sending
//! subscriptions of fresh numbers, for a fixed time, in kuaidi100's dialect (`POST /poll`,
//! the default), Kdniao's (`--dialect kdniao --ebusiness-id ID`: 8008 to `/api/dist`,
//! signed with the key as AppKey) or the native one (`--dialect native`: `POST
//! /v1/trackings` with the key as Bearer token). Prints subscriptions/s, the answer-code mix
//! (kuaidi100 returnCode; Kdniao "200" for Success, else its ResultCode; native "200" for
//! 201 Created, else the HTTP status) and latency percentiles.
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
    dialect: String,
    ebusiness_id: String,
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
        dialect: "kuaidi100".into(),
        ebusiness_id: String::new(),
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
            "--dialect" => a.dialect = value()?,
            "--ebusiness-id" => a.ebusiness_id = value()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.key.is_empty() {
        return Err("--key is required".into());
    }
    match a.dialect.as_str() {
        "kuaidi100" | "native" => {}
        "kdniao" if !a.ebusiness_id.is_empty() => {}
        "kdniao" => return Err("--dialect kdniao needs --ebusiness-id".into()),
        other => {
            return Err(format!(
                "unknown dialect {other}: kuaidi100, kdniao or native"
            ))
        }
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
    let path = match args.dialect.as_str() {
        "kdniao" => "/api/dist",
        "native" => "/v1/trackings",
        _ => "/poll",
    };
    let endpoint = format!("{}{path}", args.url.trim_end_matches('/'));
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
                let number = format!("{}{:04}{:08}", args.prefix, worker, n);
                let t = Instant::now();
                let request = if args.dialect == "native" {
                    client
                        .post(&endpoint)
                        .bearer_auth(&args.key)
                        .header("content-type", "application/json")
                        .body(format!(
                            r#"{{"number":"{number}","carrier":"{}","webhook_url":"{}"}}"#,
                            args.company, args.callback
                        ))
                } else if args.dialect == "kdniao" {
                    let data = format!(
                        r#"{{"ShipperCode":"{}","LogisticCode":"{number}","Callback":"load"}}"#,
                        args.company.to_ascii_uppercase()
                    );
                    let sign = waybill_core::sign::kdniao_data_sign(&data, &args.key);
                    client.post(&endpoint).form(&[
                        ("RequestData", data.as_str()),
                        ("EBusinessID", args.ebusiness_id.as_str()),
                        ("RequestType", "8008"),
                        ("DataSign", sign.as_str()),
                        ("DataType", "2"),
                    ])
                } else {
                    let param = format!(
                        r#"{{"company":"{}","number":"{number}","key":"{}","parameters":{{"callbackurl":"{}"}}}}"#,
                        args.company, args.key, args.callback
                    );
                    client
                        .post(&endpoint)
                        .form(&[("schema", "json"), ("param", param.as_str())])
                };
                let code = match request.send().await {
                    Ok(resp) if args.dialect == "native" => {
                        let status = resp.status().as_u16();
                        // Read to the end, as the other dialects' answers are, so the
                        // connection is reused.
                        match resp.bytes().await {
                            Ok(_) if status == 201 => "200".to_owned(),
                            Ok(_) => status.to_string(),
                            Err(_) => "unreadable".into(),
                        }
                    }
                    Ok(resp) => match resp.json::<serde_json::Value>().await {
                        Ok(v) if v["Success"] == true => "200".to_owned(),
                        Ok(v) => v["returnCode"]
                            .as_str()
                            .or(v["ResultCode"].as_str())
                            .unwrap_or("?")
                            .to_owned(),
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
