//! The raw layer: exactly the file's shape, as serde reads it (`deny_unknown_fields`, every
//! value spanned so that an error names its line). [`super::validate`] turns it into a [`super::Config`].

use super::ovh_api;
use serde::Deserialize;
use std::fmt;
use toml::Spanned;

// ---------------------------------------------------------------------------------------------
// Raw layer: exactly the file's shape.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub wan: RawWan,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub detect: RawDetect,
    #[serde(default)]
    pub update: RawUpdate,
    #[serde(default)]
    pub verify: RawVerify,
    #[serde(default)]
    pub hook: RawHook,
    #[serde(default, rename = "host")]
    pub hosts: Vec<Spanned<RawHost>>,
    #[serde(default, rename = "notify")]
    pub notify: Vec<super::notify::RawTarget>,
    pub health: Option<super::notify::RawTarget>,
    /// For the `ovh` commands only (src/config/ovh_api.rs).
    pub ovh_api: Option<Spanned<ovh_api::RawOvhApi>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWan {
    pub interface: Option<Spanned<Interfaces>>,
    pub failback: Option<Spanned<String>>,
    pub failover_requires_route: Option<Spanned<bool>>,
    pub debounce: Option<Spanned<String>>,
    pub accept: Option<Vec<Spanned<String>>>,
    pub ignore: Option<Vec<Spanned<String>>>,
    pub netlink_buffer: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: Option<Spanned<String>>,
    pub control: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub timeout: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub max_concurrent: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    pub exec: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub interval: Option<Spanned<String>>,
    pub nameservers: Option<Vec<Spanned<String>>>,
    pub resolver: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpdate {
    pub min_interval: Option<Spanned<String>>,
    pub refresh: Option<Spanned<String>>,
    pub retry_initial: Option<Spanned<String>>,
    pub retry_max: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetect {
    pub mode: Option<Spanned<String>>,
    pub ipv4: Option<Vec<Spanned<String>>>,
    pub ipv6: Option<Vec<Spanned<String>>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub hostname: Option<Spanned<String>>,
    pub login: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_credential: Option<Spanned<String>>,
    pub family: Option<Spanned<String>>,
    pub provider: Option<Spanned<String>>,
    pub server: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub exec: Option<Spanned<String>>,
    pub enabled: Option<Spanned<bool>>,
    pub interface: Option<Spanned<Interfaces>>,
    pub interface6: Option<Spanned<Interfaces>>,
    pub failback: Option<Spanned<String>>,
    pub ipv6_prefix_from: Option<Spanned<String>>,
    pub ipv6_suffix: Option<Spanned<String>>,
    pub ipv6_eui64: Option<Spanned<String>>,
    pub ipv6_neighbour: Option<Spanned<String>>,
}

/// `interface` / `interface6`: one name, or an ordered failover list (`["pppoe-wan", "wwan0"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces(pub Vec<String>);

impl<'de> Deserialize<'de> for Interfaces {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = Interfaces;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an interface name, or a list of names in order of preference")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Interfaces, E> {
                Ok(Interfaces(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Interfaces, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = a.next_element()? {
                    names.push(n);
                }
                Ok(Interfaces(names))
            }
        }
        d.deserialize_any(Names)
    }
}

impl RawHost {
    pub(super) fn inline_password(&self) -> bool {
        self.password.is_some()
    }
}

impl fmt::Debug for RawHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawHost")
            .field("hostname", &self.hostname.as_ref().map(|s| s.get_ref()))
            .field("login", &self.login.as_ref().map(|s| s.get_ref()))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .finish_non_exhaustive()
    }
}
