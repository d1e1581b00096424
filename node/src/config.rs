//! `cairn.toml`: what a node runs and how it is reached, as a commented file a person edits.

use anyhow::{bail, Context, Result};
use cairn_actors::storage::{Expiry, StorageConfig};
use cairn_actors::Time;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The name of the configuration file in a node directory.
pub const CONFIG_FILE: &str = "cairn.toml";

/// A node's configuration, as read from `cairn.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node: NodeSection,
    #[serde(default)]
    pub introducer: IntroducerSection,
    #[serde(default)]
    pub client: Option<ClientSection>,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub gateway: GatewaySection,
    #[serde(default)]
    pub repair: RepairSection,
}

/// When a client node renews its leases and repairs its files: each kind's interval
/// (`None`: off), and repair's bandwidth limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub renewal: Option<Duration>,
    pub repair: Option<Duration>,
    /// Bytes a second, on average over a run.
    pub bandwidth: Option<u64>,
}

/// `[repair]`: automatic repair of the files under the vdrive's root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairSection {
    /// How often to run `deep-check --repair --add-lease /`, e.g. "1 day"; "off".
    #[serde(default = "off")]
    pub interval: String,
    /// The average rate a run may move data at, e.g. "10 MiB" (a second); "unlimited".
    #[serde(default = "unlimited")]
    pub bandwidth: String,
}

fn off() -> String {
    "off".to_owned()
}

fn unlimited() -> String {
    "unlimited".to_owned()
}

impl Default for RepairSection {
    fn default() -> Self {
        RepairSection {
            interval: off(),
            bandwidth: unlimited(),
        }
    }
}

/// `[gateway]`: who may reach the local HTTP gateway, and how much an upload may take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Allow `[node] gateway` on an address other machines can reach. Off: the gateway
    /// grants full access to the node, so it stays on the loopback interface.
    #[serde(default)]
    pub allow_remote: bool,
    /// The largest upload accepted, e.g. "1 TiB".
    #[serde(default = "default_max_upload")]
    pub max_upload_size: String,
    /// Uploads are spooled to the node directory's disk only while this much stays free.
    #[serde(default = "default_spool_reserve")]
    pub spool_reserve: String,
    /// Serve `GET /metrics` to anyone who can reach the gateway (a Prometheus on this
    /// machine), without the API token.
    #[serde(default)]
    pub metrics_public: bool,
}

fn default_max_upload() -> String {
    // The codec's own limit: a million segments of 1 MiB.
    "1 TiB".to_owned()
}

fn default_spool_reserve() -> String {
    "1 GiB".to_owned()
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            allow_remote: false,
            max_upload_size: default_max_upload(),
            spool_reserve: default_spool_reserve(),
            metrics_public: false,
        }
    }
}

/// `[node]`: identity and listening addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Shown in status output; not an identity.
    pub nickname: String,
    /// Where the node listens for other nodes (TLS over TCP).
    pub listen: SocketAddr,
    /// The host other nodes dial, written into the node's FURL (default: `listen`'s IP).
    #[serde(default)]
    pub advertise_host: Option<String>,
    /// The local HTTP gateway the CLI talks to.
    pub gateway: SocketAddr,
}

/// `[introducer]`: whether this node runs the grid's introducer and vdrive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntroducerSection {
    pub enabled: bool,
    #[serde(default)]
    pub vdrive: bool,
}

/// `[client]`: the grid this node uploads to and how files are encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// The introducer's FURL (its vdrive is assumed to run on the same node).
    pub introducer: String,
    /// More introducers' FURLs: the node goes on learning of servers while any one is up.
    #[serde(default)]
    pub more_introducers: Vec<String>,
    pub shares_needed: usize,
    pub shares_happy: usize,
    pub shares_total: usize,
    /// How long to wait for a storage server, the introducer or the vdrive to answer.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// How often to renew this node's leases on every file under the vdrive's root
    /// (`deep-check --add-lease /`), e.g. "7 days"; "off".
    #[serde(default = "default_lease_renewal")]
    pub lease_renewal: String,
}

/// How often a client renews its leases unless its config says otherwise.
pub const DEFAULT_LEASE_RENEWAL: &str = "7 days";

fn default_lease_renewal() -> String {
    DEFAULT_LEASE_RENEWAL.to_owned()
}

/// How long a client waits for an answer unless its config says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 20;

fn default_request_timeout() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_SECS
}

/// `[storage]`: whether this node stores shares for the grid, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub enabled: bool,
    /// Disk space to leave free, e.g. "1 GB" or "500 MiB"; new shares are refused below it.
    #[serde(default = "no_reserve")]
    pub reserved_space: String,
    /// How long a lease lasts, e.g. "31 days".
    #[serde(default = "default_lease_period")]
    pub lease_period: String,
    /// When shares are collected: "off", "leases" (once every lease on the file has ended),
    /// "age:DURATION" (once every lease was renewed longer ago than that) or "cutoff:DATE"
    /// (once every lease was renewed before that UTC date, YYYY-MM-DD).
    #[serde(default = "default_expire")]
    pub expire: String,
    /// Files the collector examines per second.
    #[serde(default = "default_crawl_rate")]
    pub crawl_rate: u32,
    /// The least time between the starts of two collection passes, e.g. "1 hour".
    #[serde(default = "default_crawl_interval")]
    pub crawl_interval: String,
}

fn no_reserve() -> String {
    "0 B".to_owned()
}

fn default_lease_period() -> String {
    "31 days".to_owned()
}

fn default_expire() -> String {
    "off".to_owned()
}

fn default_crawl_rate() -> u32 {
    StorageConfig::default().crawl_rate
}

fn default_crawl_interval() -> String {
    "1 hour".to_owned()
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            enabled: false,
            reserved_space: no_reserve(),
            lease_period: default_lease_period(),
            expire: default_expire(),
            crawl_rate: default_crawl_rate(),
            crawl_interval: default_crawl_interval(),
        }
    }
}

impl StorageSection {
    /// The storage server's configuration (but for what `[node]` gives it).
    pub fn server_config(&self) -> Result<StorageConfig> {
        let lease_period = parse_duration(&self.lease_period).context("[storage] lease_period")?;
        if lease_period.is_zero() {
            bail!("[storage] lease_period must be longer than nothing");
        }
        if self.crawl_rate == 0 {
            bail!("[storage] crawl_rate must be at least 1 file a second");
        }
        Ok(StorageConfig {
            reserved_space: parse_size(&self.reserved_space).context("[storage] reserved_space")?,
            lease_period,
            expiry: parse_expiry(&self.expire).context("[storage] expire")?,
            crawl_rate: self.crawl_rate,
            crawl_interval: parse_duration(&self.crawl_interval)
                .context("[storage] crawl_interval")?,
            ..StorageConfig::default()
        })
    }
}

/// A duration such as "31 days", "90d", "1h 30m" or "2s".
pub fn parse_duration(text: &str) -> Result<Duration> {
    // humantime wants the unit to follow the number: "31 days" is read as "31days".
    let joined = join_units(text.trim());
    humantime::parse_duration(&joined).with_context(|| {
        format!("{text:?} is not a duration (such as \"31 days\", \"12h\" or \"90s\")")
    })
}

/// "31 days 2 h" as "31days 2h".
fn join_units(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut words = text.split_whitespace().peekable();
    while let Some(word) = words.next() {
        out += word;
        let number = word.chars().all(|c| c.is_ascii_digit());
        match words.peek() {
            Some(next) if number && next.starts_with(|c: char| c.is_alphabetic()) => {}
            Some(_) => out.push(' '),
            None => {}
        }
    }
    out
}

/// An expiry rule as `[storage] expire` spells it.
pub fn describe_expiry(expiry: Expiry) -> String {
    match expiry {
        Expiry::Off => "off".to_owned(),
        Expiry::Leases => "leases".to_owned(),
        Expiry::Age(age) => format!("age:{}", humantime::format_duration(age)),
        Expiry::Cutoff(at) => {
            let nanos = i128::from(at.0);
            match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
                Ok(t) => format!("cutoff:{}", t.date()),
                Err(_) => format!("cutoff:{}s", at.0 / 1_000_000_000),
            }
        }
    }
}

/// `[storage] expire`: "off", "leases", "age:DURATION" or "cutoff:YYYY-MM-DD".
pub fn parse_expiry(text: &str) -> Result<Expiry> {
    let text = text.trim();
    Ok(match text.split_once(':') {
        None if text == "off" => Expiry::Off,
        None if text == "leases" => Expiry::Leases,
        Some(("age", age)) => Expiry::Age(parse_duration(age)?),
        Some(("cutoff", date)) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let date = time::Date::parse(date.trim(), format)
                .with_context(|| format!("{date:?} is not a date of the form YYYY-MM-DD"))?;
            let at = date.midnight().assume_utc().unix_timestamp_nanos();
            Expiry::Cutoff(Time(u64::try_from(at).context("a date before 1970")?))
        }
        _ => bail!(
            "{text:?} is none of \"off\", \"leases\", \"age:DURATION\" (such as \
             \"age:90 days\") or \"cutoff:YYYY-MM-DD\""
        ),
    })
}

impl NodeConfig {
    /// Reads and checks `DIR/cairn.toml`.
    pub fn load(dir: &Path) -> Result<NodeConfig> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is {} a node directory made by `cairn create-node` or \
                 `cairn create-introducer`?)",
                path.display(),
                dir.display()
            )
        })?;
        Self::parse(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    /// Parses and checks the text of a `cairn.toml`.
    pub fn parse(text: &str) -> Result<NodeConfig> {
        let config: NodeConfig = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    /// The configuration's own consistency: something to run, a sane encoding, a size that
    /// parses.
    pub fn check(&self) -> Result<()> {
        if !self.introducer.enabled && self.client.is_none() && !self.storage.enabled {
            bail!("the node runs nothing: enable [introducer], [client] or [storage]");
        }
        if self.introducer.vdrive && !self.introducer.enabled {
            bail!("[introducer] vdrive = true needs enabled = true");
        }
        if self.storage.enabled && self.client.is_none() {
            bail!("a storage node needs a [client] section naming the introducer");
        }
        if let Some(client) = &self.client {
            client.encoding()?;
            if client.request_timeout_secs == 0 {
                bail!("[client] request_timeout_secs must be at least 1");
            }
        }
        self.storage.server_config()?;
        self.upkeep_plan()?;
        self.upload_limits()?;
        let gateway = self.node.gateway.ip();
        if !gateway.is_loopback() && !self.gateway.allow_remote {
            bail!(
                "[node] gateway = \"{}\" is reachable from other machines, and the gateway \
                 grants full access to the node: use 127.0.0.1, or set [gateway] \
                 allow_remote = true if a firewall or proxy of yours guards it",
                self.node.gateway
            );
        }
        Ok(())
    }

    /// When the node renews its leases and repairs its files (nothing without a client).
    pub fn upkeep_plan(&self) -> Result<Option<Plan>> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        let every = |text: &str, what: &str| -> Result<Option<Duration>> {
            if text.trim() == "off" {
                return Ok(None);
            }
            let interval = parse_duration(text).context(what.to_owned())?;
            if interval < Duration::from_secs(1) {
                bail!("{what} must be at least a second (or \"off\")");
            }
            Ok(Some(interval))
        };
        let bandwidth = match self.repair.bandwidth.trim() {
            "unlimited" => None,
            text => match parse_size(text).context("[repair] bandwidth")? {
                0 => bail!("[repair] bandwidth must be more than nothing (or \"unlimited\")"),
                rate => Some(rate),
            },
        };
        Ok(Some(Plan {
            renewal: every(&client.lease_renewal, "[client] lease_renewal")?,
            repair: every(&self.repair.interval, "[repair] interval")?,
            bandwidth,
        }))
    }

    /// `[gateway] max_upload_size` and `spool_reserve`, in bytes.
    pub fn upload_limits(&self) -> Result<(u64, u64)> {
        let max = parse_size(&self.gateway.max_upload_size).context("[gateway] max_upload_size")?;
        let reserve = parse_size(&self.gateway.spool_reserve).context("[gateway] spool_reserve")?;
        Ok((max, reserve))
    }

    /// The file's text: every setting with a comment saying what it does.
    pub fn to_commented_toml(&self) -> String {
        let mut out = String::from(HEADER);
        out += &format!(
            "\n[node]\n\
             # Shown in status output; not an identity (that is the key in private/).\n\
             nickname = {nickname}\n\
             # Where the node listens for other nodes (TLS 1.3 over TCP). Port 0: the OS picks\n\
             # one on the first start and the node keeps it (in transport.port).\n\
             listen = \"{listen}\"\n\
             # The host other nodes dial, written into this node's FURL (default: listen's IP).\n\
             {advertise}\n\
             # The local HTTP gateway the CLI talks to (its URL is written to node.url at each\n\
             # start). It grants full access to the node: keep it on 127.0.0.1.\n\
             gateway = \"{gateway}\"\n",
            nickname = toml_string(&self.node.nickname),
            listen = self.node.listen,
            advertise = match &self.node.advertise_host {
                Some(host) => format!("advertise_host = {}", toml_string(host)),
                None => "# advertise_host = \"storage1.example.org\"".to_owned(),
            },
            gateway = self.node.gateway,
        );
        out += &format!(
            "\n[introducer]\n\
             # Run the grid's introducer here (its FURL is written to introducer.furl).\n\
             enabled = {}\n\
             # Run the grid's vdrive (the shared directory tree) here too.\n\
             vdrive = {}\n",
            self.introducer.enabled, self.introducer.vdrive
        );
        if let Some(client) = &self.client {
            out += &format!(
                "\n[client]\n\
                 # The introducer's FURL: how this node finds the grid's storage servers (its\n\
                 # node keeps this node's directories too).\n\
                 introducer = {}\n\
                 # More introducers' FURLs: servers are learnt while any one is up.\n\
                 more_introducers = [{}]\n\
                 # Each file is cut into shares_total shares, any shares_needed of which\n\
                 # rebuild it; an upload succeeds once shares_happy servers hold distinct\n\
                 # shares.\n\
                 shares_needed = {}\n\
                 shares_happy = {}\n\
                 shares_total = {}\n\
                 # Seconds to wait for a server, the introducer or the vdrive to answer before\n\
                 # taking it for gone (a download then uses other servers' shares).\n\
                 request_timeout_secs = {}\n\
                 # How often this node renews its leases on every file under the vdrive's\n\
                 # root (as `cairn deep-check --add-lease /` does), so that servers that\n\
                 # collect garbage keep them: well within their lease period (31 days by\n\
                 # default). \"off\" to leave it to you.\n\
                 lease_renewal = {}\n",
                toml_string(&client.introducer),
                client
                    .more_introducers
                    .iter()
                    .map(|f| toml_string(f))
                    .collect::<Vec<_>>()
                    .join(", "),
                client.shares_needed,
                client.shares_happy,
                client.shares_total,
                client.request_timeout_secs,
                toml_string(&client.lease_renewal),
            );
        }
        out += &format!(
            "\n[storage]\n\
             # Store shares for the grid (under storage/shares/).\n\
             enabled = {}\n\
             # Disk space to leave free; new shares are refused rather than go below it.\n\
             reserved_space = {}\n\
             # How long a lease lasts: clients renew theirs (`cairn deep-check --add-lease`,\n\
             # and on a schedule: [client] lease_renewal) before it ends.\n\
             lease_period = {}\n\
             # Garbage collection: when the shares of a file nobody renews are deleted.\n\
             # \"off\" (keep everything), \"leases\" (once every lease on the file has ended),\n\
             # \"age:90 days\" (once every lease was renewed longer ago than that) or\n\
             # \"cutoff:2027-01-01\" (once every lease was renewed before that date, UTC).\n\
             # `cairn status` on this node shows how many shares will lapse within a week.\n\
             expire = {}\n\
             # The collector examines this many files a second, and starts a pass over them\n\
             # at most once per crawl_interval.\n\
             crawl_rate = {}\n\
             crawl_interval = {}\n",
            self.storage.enabled,
            toml_string(&self.storage.reserved_space),
            toml_string(&self.storage.lease_period),
            toml_string(&self.storage.expire),
            self.storage.crawl_rate,
            toml_string(&self.storage.crawl_interval),
        );
        out += &format!(
            "\n[repair]\n\
             # How often this node checks every file under the vdrive's root and repairs\n\
             # those short of shares (as `cairn deep-check --repair --add-lease /` does),\n\
             # e.g. \"1 day\"; \"off\". `cairn status` shows the last run.\n\
             interval = {}\n\
             # The average rate a repair run may move data at, e.g. \"10 MiB\" (a second),\n\
             # or \"unlimited\".\n\
             bandwidth = {}\n",
            toml_string(&self.repair.interval),
            toml_string(&self.repair.bandwidth),
        );
        out += &format!(
            "\n[gateway]\n\
             # Allow [node] gateway on an address other machines can reach. The gateway grants\n\
             # full access to the node (every request needs the token in private/, but still):\n\
             # only behind a firewall or proxy of yours.\n\
             allow_remote = {}\n\
             # The largest upload accepted.\n\
             max_upload_size = {}\n\
             # Uploads are spooled to this disk first; they fail rather than leave less free.\n\
             spool_reserve = {}\n\
             # Serve GET /metrics (Prometheus) without the API token, to whoever reaches the\n\
             # gateway (on 127.0.0.1: this machine's users).\n\
             metrics_public = {}\n",
            self.gateway.allow_remote,
            toml_string(&self.gateway.max_upload_size),
            toml_string(&self.gateway.spool_reserve),
            self.gateway.metrics_public
        );
        out
    }
}

const HEADER: &str = "\
# cairn node configuration. Edit it, then restart the node (`cairn run DIR`).
# Secrets (the node key, the FURL secret, the convergence secret) live in private/.
";

impl ClientSection {
    /// The encoding parameters and happiness, checked.
    pub fn encoding(&self) -> Result<(cairn_codec::EncodingParams, usize)> {
        let shares = Shares {
            needed: self.shares_needed,
            happy: self.shares_happy,
            total: self.shares_total,
        };
        shares.check(cairn_codec::DEFAULT_MAX_SEGMENT_SIZE)
    }
}

/// k, happy and N: shares needed to read a file, servers that must hold distinct shares
/// for an upload to succeed, shares made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shares {
    pub needed: usize,
    pub happy: usize,
    pub total: usize,
}

impl Shares {
    /// Tahoe-LAFS's defaults: 3 of 10, happy at 7.
    pub const DEFAULT: Shares = Shares {
        needed: 3,
        happy: 7,
        total: 10,
    };

    /// The values given, the others taken from `self` where they fit and made to fit where
    /// they do not (`--shares-total 5` alone: 3 of 5, happy 5).
    pub fn with(self, needed: Option<usize>, happy: Option<usize>, total: Option<usize>) -> Shares {
        let needed = needed.unwrap_or(self.needed.min(total.unwrap_or(self.needed)));
        let total = total.unwrap_or(self.total.max(needed));
        let happy = happy.unwrap_or(self.happy.max(needed).min(total));
        Shares {
            needed,
            happy,
            total,
        }
    }

    /// The encoding parameters (with segments of at most `max_segment_size`) and happiness,
    /// or why these shares do not make sense.
    pub fn check(self, max_segment_size: u64) -> Result<(cairn_codec::EncodingParams, usize)> {
        let params = cairn_codec::EncodingParams::new(self.needed, self.total, max_segment_size)
            .with_context(|| {
                format!(
                    "shares_needed = {} of shares_total = {}",
                    self.needed, self.total
                )
            })?;
        if self.happy < self.needed || self.happy > self.total {
            bail!(
                "shares_happy = {} must lie between shares_needed = {} and shares_total = {}",
                self.happy,
                self.needed,
                self.total
            );
        }
        Ok((params, self.happy))
    }
}

/// A size such as "0", "1 GB", "500MiB" or "1.5 TB", in bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let size: bytesize::ByteSize = text.trim().parse().map_err(|e| {
        anyhow::anyhow!("{text:?} is not a size such as \"1 GB\" or \"500 MiB\": {e}")
    })?;
    Ok(size.as_u64())
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeConfig {
        NodeConfig {
            node: NodeSection {
                nickname: "storage \"one\"".to_owned(),
                listen: "127.0.0.1:0".parse().unwrap(),
                advertise_host: None,
                gateway: "127.0.0.1:0".parse().unwrap(),
            },
            introducer: IntroducerSection::default(),
            client: Some(ClientSection {
                introducer: "pb://abc@127.0.0.1:1/def".to_owned(),
                shares_needed: 3,
                shares_happy: 7,
                shares_total: 10,
                request_timeout_secs: 20,
                lease_renewal: DEFAULT_LEASE_RENEWAL.to_owned(),
                more_introducers: vec!["pb://xyz@127.0.0.1:2/uvw".to_owned()],
            }),
            storage: StorageSection {
                enabled: true,
                reserved_space: "1 GB".to_owned(),
                expire: "age:90 days".to_owned(),
                ..StorageSection::default()
            },
            gateway: GatewaySection::default(),
            repair: RepairSection::default(),
        }
    }

    #[test]
    fn the_commented_file_reads_back_as_written() {
        let config = sample();
        let text = config.to_commented_toml();
        assert!(text.contains("# Disk space to leave free"));
        let back: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        back.check().unwrap();
        let server = back.storage.server_config().unwrap();
        assert_eq!(server.reserved_space, 1_000_000_000);
        assert_eq!(server.lease_period, Duration::from_secs(31 * 24 * 3600));
        assert_eq!(
            server.expiry,
            Expiry::Age(Duration::from_secs(90 * 24 * 3600))
        );
    }

    #[test]
    fn durations_and_expiry_rules_read_as_people_write_them() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(parse_duration("31 days").unwrap(), 31 * day);
        assert_eq!(parse_duration("31d").unwrap(), 31 * day);
        assert_eq!(
            parse_duration(" 1 h 30 min ").unwrap(),
            Duration::from_secs(5400)
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("31").is_err(), "a unit is needed");
        assert_eq!(parse_expiry("off").unwrap(), Expiry::Off);
        assert_eq!(parse_expiry("leases").unwrap(), Expiry::Leases);
        assert_eq!(
            parse_expiry("age:2s").unwrap(),
            Expiry::Age(Duration::from_secs(2))
        );
        assert_eq!(
            parse_expiry("cutoff:2027-01-01").unwrap(),
            Expiry::Cutoff(Time(1_798_761_600_000_000_000))
        );
        for bad in [
            "on",
            "age:",
            "cutoff:2027-13-01",
            "cutoff:yesterday",
            "age:forever",
        ] {
            let error = format!("{:#}", parse_expiry(bad).unwrap_err());
            assert!(
                error.contains("is no") || error.contains("not a"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let mut config = sample();
        config.client.as_mut().unwrap().shares_happy = 11;
        let error = format!("{:#}", config.check().unwrap_err());
        assert!(error.contains("shares_happy = 11"), "{error}");

        let mut config = sample();
        config.storage.reserved_space = "lots".to_owned();
        let error = format!("{:#}", config.check().unwrap_err());
        assert!(error.contains("reserved_space"), "{error}");

        let mut config = sample();
        config.client = None;
        assert!(config.check().is_err(), "storage without an introducer");

        let text = sample()
            .to_commented_toml()
            .replace("[storage]", "[storage]\nsize = 3");
        assert!(
            toml::from_str::<NodeConfig>(&text).is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn a_gateway_other_machines_can_reach_needs_an_explicit_yes() {
        let mut config = sample();
        config.node.gateway = "0.0.0.0:3456".parse().unwrap();
        let error = format!("{:#}", config.check().unwrap_err());
        assert!(error.contains("allow_remote"), "{error}");
        config.gateway.allow_remote = true;
        config.check().unwrap();
        let text = config.to_commented_toml();
        assert_eq!(toml::from_str::<NodeConfig>(&text).unwrap(), config);
        let old = text
            .split("\n[gateway]")
            .next()
            .unwrap()
            .replace("0.0.0.0", "127.0.0.1");
        let back: NodeConfig = toml::from_str(&old).unwrap();
        assert_eq!(
            back.gateway,
            GatewaySection::default(),
            "older files read as before"
        );
    }

    #[test]
    fn sizes_parse_in_both_unit_systems() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("500 MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("2KB").unwrap(), 2000);
        assert!(parse_size("-1").is_err());
    }
}
