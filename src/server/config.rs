//! Server configuration: flags, environment variables (`CLEW_*`) and an optional TOML file.
//! A flag or variable wins over the file; the file wins over the defaults.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `clew serve` flags. Each has a `CLEW_…` environment variable; see `--help`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML; keys as the long flags with `_` for `-`).
    #[arg(long, env = "CLEW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Store directory (created if missing) [default: ./clew-data].
    #[arg(long, env = "CLEW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the store in memory (nothing survives a restart).
    #[arg(long)]
    pub memory: bool,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CLEW_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Load the example graph (fixtures/) when the store is empty, and print example requests.
    #[arg(long)]
    pub demo: bool,
    /// Log as JSON lines.
    #[arg(long, env = "CLEW_LOG_JSON")]
    pub log_json: bool,
    /// Largest request body, in bytes [default: 4194304].
    #[arg(long, env = "CLEW_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest time a request may take, in milliseconds [default: 10000].
    #[arg(long, env = "CLEW_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Largest page of a lookup or tuple read [default: 100000].
    #[arg(long, env = "CLEW_MAX_PAGE_SIZE")]
    pub max_page_size: Option<usize>,
    /// Largest resolution depth a request may ask for [default: 25].
    #[arg(long, env = "CLEW_MAX_DEPTH")]
    pub max_depth: Option<u32>,
    /// Most checks in one batch, and most candidates in one filter [default: 10000].
    #[arg(long, env = "CLEW_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Longest time a SPARQL query may run, in milliseconds [default: 5000].
    #[arg(long, env = "CLEW_SPARQL_TIMEOUT_MS")]
    pub sparql_timeout_ms: Option<u64>,
    /// Most rows (or triples) a SPARQL query may return [default: 100000].
    #[arg(long, env = "CLEW_SPARQL_MAX_RESULTS")]
    pub sparql_max_results: Option<usize>,
    /// Most quads one SPARQL update may add and remove [default: 100000].
    #[arg(long, env = "CLEW_SPARQL_MAX_UPDATE_QUADS")]
    pub sparql_max_update_quads: Option<usize>,
    /// Most SPARQL requests evaluated at once; more wait for a slot up to their time limit,
    /// then get a 503 [default: 4].
    #[arg(long, env = "CLEW_SPARQL_MAX_CONCURRENT")]
    pub sparql_max_concurrent: Option<usize>,
    /// Memory budget of one SPARQL query's worker process, in MiB [default: 2048]. With the
    /// on-disk store each query runs in its own process (`clew sparql-worker`) under this
    /// address-space limit and is killed at its time limit.
    #[arg(long, env = "CLEW_SPARQL_MEMORY_MB")]
    pub sparql_memory_mb: Option<u64>,
    /// Run SPARQL queries in the server process even with the on-disk store (no memory budget;
    /// a query that computes without reading the store cannot be stopped at its time limit).
    #[arg(long, env = "CLEW_SPARQL_IN_PROCESS")]
    pub sparql_in_process: bool,
    /// Allow SPARQL `SERVICE` (federated queries to other endpoints, over plain HTTP).
    #[arg(long, env = "CLEW_SPARQL_ALLOW_SERVICE")]
    pub sparql_allow_service: bool,
    /// Allow SPARQL `LOAD <url>` (plain HTTP).
    #[arg(long, env = "CLEW_SPARQL_ALLOW_LOAD")]
    pub sparql_allow_load: bool,
    /// The URL clients reach this server at (for the AuthZEN metadata) [default: from the
    /// request's Host header].
    #[arg(long, env = "CLEW_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// The configuration file: the same settings as the flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    memory: Option<bool>,
    listen: Option<SocketAddr>,
    demo: Option<bool>,
    log_json: Option<bool>,
    max_body_bytes: Option<usize>,
    request_timeout_ms: Option<u64>,
    max_page_size: Option<usize>,
    max_depth: Option<u32>,
    max_batch: Option<usize>,
    sparql_timeout_ms: Option<u64>,
    sparql_max_results: Option<usize>,
    sparql_max_update_quads: Option<usize>,
    sparql_max_concurrent: Option<usize>,
    sparql_memory_mb: Option<u64>,
    sparql_in_process: Option<bool>,
    sparql_allow_service: Option<bool>,
    sparql_allow_load: Option<bool>,
    public_url: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: in memory.
    pub data_dir: Option<PathBuf>,
    pub listen: SocketAddr,
    pub demo: bool,
    pub log_json: bool,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_page_size: usize,
    pub max_depth: u32,
    pub max_batch: usize,
    pub sparql_timeout: Duration,
    pub sparql_max_results: usize,
    pub sparql_max_update_quads: usize,
    pub sparql_max_concurrent: usize,
    pub sparql_memory_mb: u64,
    pub sparql_in_process: bool,
    /// Set by `run` for the on-disk store: the executable and store directory SPARQL query
    /// workers are started with. `None`: queries run in process.
    pub sparql_worker: Option<(PathBuf, PathBuf)>,
    pub sparql_allow_service: bool,
    pub sparql_allow_load: bool,
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: Some(PathBuf::from("./clew-data")),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            demo: false,
            log_json: false,
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_millis(10_000),
            max_page_size: crate::service::bulk::MAX_PAGE_SIZE,
            max_depth: crate::engine::DEFAULT_MAX_DEPTH,
            max_batch: crate::service::bulk::MAX_BATCH_CHECKS,
            sparql_timeout: Duration::from_millis(5_000),
            sparql_max_results: 100_000,
            sparql_max_update_quads: 100_000,
            sparql_max_concurrent: 4,
            sparql_memory_mb: 2048,
            sparql_in_process: false,
            sparql_worker: None,
            sparql_allow_service: false,
            sparql_allow_load: false,
            public_url: None,
        }
    }
}

impl Config {
    /// Resolves flags (and their environment variables) over the file over the defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let memory = args.memory || file.memory.unwrap_or(false);
        let ms = Duration::from_millis;
        let c = Config {
            data_dir: if memory {
                None
            } else {
                Some(
                    args.data_dir
                        .clone()
                        .or(file.data_dir)
                        .or(d.data_dir)
                        .unwrap_or_default(),
                )
            },
            listen: args.listen.or(file.listen).unwrap_or(d.listen),
            demo: args.demo || file.demo.unwrap_or(false),
            log_json: args.log_json || file.log_json.unwrap_or(false),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(d.max_body_bytes),
            request_timeout: args
                .request_timeout_ms
                .or(file.request_timeout_ms)
                .map(ms)
                .unwrap_or(d.request_timeout),
            max_page_size: args
                .max_page_size
                .or(file.max_page_size)
                .unwrap_or(d.max_page_size),
            max_depth: args.max_depth.or(file.max_depth).unwrap_or(d.max_depth),
            max_batch: args.max_batch.or(file.max_batch).unwrap_or(d.max_batch),
            sparql_timeout: args
                .sparql_timeout_ms
                .or(file.sparql_timeout_ms)
                .map(ms)
                .unwrap_or(d.sparql_timeout),
            sparql_max_results: args
                .sparql_max_results
                .or(file.sparql_max_results)
                .unwrap_or(d.sparql_max_results),
            sparql_max_update_quads: args
                .sparql_max_update_quads
                .or(file.sparql_max_update_quads)
                .unwrap_or(d.sparql_max_update_quads),
            sparql_max_concurrent: args
                .sparql_max_concurrent
                .or(file.sparql_max_concurrent)
                .unwrap_or(d.sparql_max_concurrent),
            sparql_memory_mb: args
                .sparql_memory_mb
                .or(file.sparql_memory_mb)
                .unwrap_or(d.sparql_memory_mb),
            sparql_in_process: args.sparql_in_process || file.sparql_in_process.unwrap_or(false),
            sparql_worker: None,
            sparql_allow_service: args.sparql_allow_service
                || file.sparql_allow_service.unwrap_or(false),
            sparql_allow_load: args.sparql_allow_load || file.sparql_allow_load.unwrap_or(false),
            public_url: args.public_url.clone().or(file.public_url),
        };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes as u64),
            (
                "request_timeout_ms",
                self.request_timeout.as_millis() as u64,
            ),
            ("max_page_size", self.max_page_size as u64),
            ("max_depth", u64::from(self.max_depth)),
            ("max_batch", self.max_batch as u64),
            ("sparql_timeout_ms", self.sparql_timeout.as_millis() as u64),
            ("sparql_max_results", self.sparql_max_results as u64),
            (
                "sparql_max_update_quads",
                self.sparql_max_update_quads as u64,
            ),
            ("sparql_max_concurrent", self.sparql_max_concurrent as u64),
            ("sparql_memory_mb", self.sparql_memory_mb),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.sparql_memory_mb < 512 {
            return Err(format!(
                "sparql_memory_mb {} is too small: a query worker needs about 500 MiB of address space to open the store",
                self.sparql_memory_mb
            ));
        }
        if self.max_page_size > crate::service::bulk::MAX_PAGE_SIZE {
            return Err(format!(
                "max_page_size {} exceeds the engine's limit {}",
                self.max_page_size,
                crate::service::bulk::MAX_PAGE_SIZE
            ));
        }
        if self.max_batch > crate::service::bulk::MAX_BATCH_CHECKS {
            return Err(format!(
                "max_batch {} exceeds the engine's limit {}",
                self.max_batch,
                crate::service::bulk::MAX_BATCH_CHECKS
            ));
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("clew.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nmax_depth = 10\nmax_batch = 50\n",
        )
        .map_err(|e| e.to_string())?;
        let args = ServeArgs {
            config: Some(path),
            max_depth: Some(7),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args)?;
        assert_eq!(c.max_depth, 7);
        assert_eq!(c.max_batch, 50);
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.max_page_size, crate::service::bulk::MAX_PAGE_SIZE);
        Ok(())
    }

    #[test]
    fn an_unknown_key_or_a_zero_limit_is_an_error() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("clew.toml");
        std::fs::write(&path, "max_dept = 10\n").map_err(|e| e.to_string())?;
        let args = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        };
        let e = Config::resolve(&args).err().unwrap_or_default();
        assert!(e.contains("max_dept"), "{e}");
        std::fs::write(&path, "max_batch = 0\n").map_err(|e| e.to_string())?;
        let e = Config::resolve(&args).err().unwrap_or_default();
        assert!(e.contains("max_batch must be positive"), "{e}");
        Ok(())
    }
}
