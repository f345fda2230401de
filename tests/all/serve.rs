//! `sonde serve` as an operator runs it: a child process with a config
//! file, a real SQLite file, the JSON API on loopback. Shared helpers for
//! the daemon tests (api.rs, daemon.rs, web_ui.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::sonde;

/// A running daemon; killed when dropped.
pub(crate) struct Served {
    child: Option<Child>,
    pub url: String,
    pub dir: std::path::PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stderr: Arc<Mutex<String>>,
}

/// The sample cluster in the repository.
pub(crate) fn sample_cluster() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/demo/sample-cluster.yaml"
    )
    .to_string()
}

impl Served {
    /// Writes `config` (with `{dir}` for the test's folder, `{cluster}` for
    /// the sample cluster, `{hostile}`/`{trivial}` for the test probes) and
    /// starts `sonde serve -c` on it.
    pub fn start(config: &str) -> Served {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Served::start_in(&dir, config).unwrap_or_else(|e| panic!("{e}"));
        s._tmp = Some(tmp);
        s
    }

    /// Starts in an existing folder (a restart); Err with stderr if it exits.
    pub fn start_in(dir: &std::path::Path, config: &str) -> Result<Served, String> {
        let text = expand(config, dir);
        std::fs::write(dir.join("sonde.yaml"), text).unwrap();
        let mut child = sonde()
            .args(["serve", "-c"])
            .arg(dir.join("sonde.yaml"))
            .env("SONDE_LOG", "sonde=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let pipe = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("sonde: serving ") {
                        let url = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .trim_end_matches('/');
                        let _ = tx.send(url.to_string());
                    }
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(url) = rx.recv_timeout(Duration::from_millis(100)) {
                return Ok(Served {
                    child: Some(child),
                    url,
                    dir: dir.to_path_buf(),
                    _tmp: None,
                    stderr,
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                return Err(format!(
                    "sonde serve exited with {status}:\n{}",
                    stderr.lock().unwrap()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "sonde serve did not start:\n{}",
                stderr.lock().unwrap()
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal by name (HUP, TERM) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let c = self.child.as_mut().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                self.child = None;
                return s;
            }
            assert!(Instant::now() < deadline, "did not exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let url = format!("{}{}", self.url, path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("POST", None) => {
                let mut r = agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send_empty()
            }
            ("POST", Some((ct, bytes))) => {
                let mut r = agent.post(&url).header("Content-Type", ct);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(bytes)
            }
            other => panic!("{other:?}"),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let mut body = String::new();
        resp.body_mut()
            .as_reader()
            .read_to_string(&mut body)
            .unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The daemon's SQLite file, opened beside it as an agent opens one
    /// (not the owner: nothing of the daemon's is marked interrupted).
    pub async fn open_store(&self) -> sonde::store::Store {
        sonde::store::Store::open_with(
            self.dir.join("sonde.db"),
            sonde::store::OpenOptions {
                owner: false,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, None)
    }

    /// GET that must answer 200 with JSON.
    pub fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }

    /// Waits until `f` holds of the runs list (newest 1000).
    pub fn wait_runs(&self, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let runs = self.json("/api/v1/runs?limit=1000")["items"]
                .as_array()
                .unwrap()
                .clone();
            if f(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {runs:#?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every probe in `names` has a finished run.
    pub fn wait_first_runs(&self, names: &[&str]) -> Vec<Value> {
        self.wait_runs("the first runs", |runs| {
            names.iter().all(|n| {
                runs.iter().any(|r| {
                    r["probe"] == *n && matches!(r["status"].as_str(), Some("succeeded" | "failed"))
                })
            })
        })
    }

    /// Opens the event stream and returns a reader of its lines.
    pub fn events(&self, token: Option<&str>) -> BufReader<TcpStream> {
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{auth}\r\n"
        )
        .unwrap();
        BufReader::new(s)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

fn expand(config: &str, dir: &std::path::Path) -> String {
    config
        .replace("{dir}", &dir.display().to_string())
        .replace("{cluster}", &sample_cluster())
        .replace("{hostile}", sonde_probes::TEST_HOSTILE_PATH)
        .replace("{trivial}", sonde_probes::TEST_TRIVIAL_PATH)
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The JSON error's message, checking the error shape and status.
    #[track_caller]
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["status"], status, "{v}");
        v["error"]["message"].as_str().unwrap().to_string()
    }
}
