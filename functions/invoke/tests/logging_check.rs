//! The fail-closed logging check end to end. The emulator holds one invocation-logging
//! configuration per account, so these scenarios live in their own test target and run in order.

mod harness;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_bedrock::types::{CloudWatchConfig, LoggingConfig, S3Config};
use harness::{World, event};

/// The emulator holds one logging configuration: one scenario at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn set_logging(world: &World, config: Option<LoggingConfig>) {
    let bedrock = aws_sdk_bedrock::Client::new(&world.config);
    match config {
        Some(config) => {
            bedrock
                .put_model_invocation_logging_configuration()
                .logging_config(config)
                .send()
                .await
                .unwrap();
        }
        None => {
            bedrock
                .delete_model_invocation_logging_configuration()
                .send()
                .await
                .unwrap();
        }
    }
}

fn cloudwatch_text_logging(s3_too: bool, text: bool) -> LoggingConfig {
    let mut config = LoggingConfig::builder()
        .cloud_watch_config(
            CloudWatchConfig::builder()
                .log_group_name("/isv/bedrock-invocations")
                .role_arn("arn:aws:iam::123456789012:role/bedrock-logging")
                .build()
                .unwrap(),
        )
        .text_data_delivery_enabled(text);
    if s3_too {
        config = config.s3_config(
            S3Config::builder()
                .bucket_name("other-logs")
                .build()
                .unwrap(),
        );
    }
    config.build()
}

#[tokio::test]
async fn invoke_refuses_whenever_text_logging_could_capture_the_prompt() {
    let _one = ONE_AT_A_TIME.lock().await;
    let world = World::new().await;
    world.seed("You are Acme's support assistant.").await;
    let tenant_hosted = world.function(&[]);
    let isv_hosted = world.function(&[
        ("DEPLOYMENT_MODE", "isv-hosted"),
        (
            "LOG_DESTINATION_ALLOW_LIST",
            "cloudwatch:/isv/bedrock-invocations",
        ),
    ]);
    let request = event("http-api-jwt");

    set_logging(&world, None).await;
    assert_eq!(tenant_hosted.invoke(&request).status, 200);

    set_logging(&world, Some(cloudwatch_text_logging(false, true))).await;
    let refused = tenant_hosted.invoke(&request);
    assert_eq!(
        (refused.status, refused.code()),
        (503, "invocation_logging_enabled")
    );
    // The ISV's own log group, which redact-log processes, is allowed in ISV-hosted mode.
    assert_eq!(isv_hosted.invoke(&request).status, 200);

    set_logging(&world, Some(cloudwatch_text_logging(true, true))).await;
    let refused = isv_hosted.invoke(&request);
    assert_eq!(
        (refused.status, refused.code()),
        (503, "invocation_logging_enabled")
    );

    // Logging on, but without text: nothing of the prompt is recorded.
    set_logging(&world, Some(cloudwatch_text_logging(true, false))).await;
    assert_eq!(tenant_hosted.invoke(&request).status, 200);

    set_logging(&world, None).await;
    assert_eq!(tenant_hosted.invoke(&request).status, 200);
    assert_eq!(
        world.model_requests().len(),
        4,
        "refused requests never reached the model"
    );
}

/// A TCP pass-through to the emulator's Bedrock control plane that can be switched to throttle
/// every call (HTTP 429 `ThrottlingException`), cutting the connections it holds open.
struct Throttler {
    endpoint: String,
    throttling: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Throttler {
    fn start() -> Self {
        let upstream = promptseal_devstack::endpoint_from_env("AWS_ENDPOINT_URL")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let throttling = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (flag, held) = (throttling.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if flag.load(Ordering::SeqCst) {
                    std::thread::spawn(move || throttle(client));
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut held = held.lock().unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
                held.extend([client, server]);
            }
        });
        Self {
            endpoint,
            throttling,
            open,
        }
    }

    fn throttle_every_call(&self, on: bool) {
        self.throttling.store(on, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Reads one request's head and answers it as a throttled Bedrock does.
fn throttle(mut client: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = r#"{"message":"Rate exceeded"}"#;
    let _ = write!(
        client,
        "HTTP/1.1 429 Too Many Requests\r\nx-amzn-ErrorType: ThrottlingException\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Waits until `secs` have passed since `since`.
async fn until(since: Instant, secs: f64) {
    let at = since + Duration::from_secs_f64(secs);
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

/// As deployed (no variable overrides the production defaults: a check is reused for 5 s, an
/// "ok" stands in for a failed check for 30 s at most), text logging switched on reaches a warm
/// instance within 5 s, and a throttled check never lets a request through on an "ok" older
/// than 30 s.
#[tokio::test]
async fn a_warm_instance_relies_on_a_logging_check_only_within_its_limits() {
    let _one = ONE_AT_A_TIME.lock().await;
    let world = World::new().await;
    world.seed("You are Acme's support assistant.").await;
    let control_plane = Throttler::start();
    let function =
        world.function_at_defaults(&[("AWS_ENDPOINT_URL_BEDROCK", &control_plane.endpoint)]);
    let request = event("http-api-jwt");
    let status = || {
        let reply = function.invoke(&request);
        (reply.status, reply.code().to_owned())
    };
    let answered = (200, String::new());

    set_logging(&world, None).await;
    assert_eq!(status(), answered);
    // Text logging switched on: refused once the 5 s reuse window has passed.
    set_logging(&world, Some(cloudwatch_text_logging(false, true))).await;
    let switched_on = Instant::now();
    until(switched_on, 5.2).await;
    assert_eq!(status(), (503, "invocation_logging_enabled".to_owned()));

    set_logging(&world, None).await;
    until(switched_on, 10.5).await;
    assert_eq!(status(), answered);
    let last_ok = Instant::now();

    // Throttled: the last "ok" stands in while it is younger than 30 s, never after.
    control_plane.throttle_every_call(true);
    until(last_ok, 5.5).await;
    assert_eq!(status(), answered);
    until(last_ok, 30.5).await;
    assert_eq!(status(), (503, "logging_check_failed".to_owned()));
    control_plane.throttle_every_call(false);
    assert_eq!(status(), answered);

    let logs = function.logs();
    assert!(logs.contains("logging_check_fallback"), "{logs}");
    assert!(logs.contains("ThrottlingException"), "{logs}");
    assert!(
        logs.contains("LoggingCheckAge"),
        "the check's age is a metric"
    );
}
