//! The topology file: sites, their zones and nodes, and their addresses.
//!
//! ```toml
//! [[sites]]
//! name = "primary"
//! role = "active"        # or "standby"
//! [[sites.nodes]]
//! id = 1
//! zone = "a"
//! client_addr = "127.0.0.1:7101"
//! peer_addr = "127.0.0.1:7201"
//! metrics_addr = "127.0.0.1:7301"   # optional
//! ```
//! Exactly one site is active. Node ids are unique within a site; addresses are unique
//! across the file. Data directories are `<data root>/<site>/node-<id>`.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde::Serialize;

/// The embedded default: a primary site of three nodes in zones a, b, c, and a DR site of
/// three nodes, all on loopback.
pub const DEFAULT_TOPOLOGY: &str = include_str!("default-topology.toml");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub sites: Vec<SiteSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub name: String,
    /// "active" or "standby".
    pub role: String,
    pub nodes: Vec<NodeSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub id: u64,
    pub zone: String,
    pub client_addr: String,
    pub peer_addr: String,
    #[serde(default)]
    pub metrics_addr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing the topology: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid topology: {0}")]
    Invalid(String),
}

impl Topology {
    pub fn parse(text: &str) -> Result<Topology, TopologyError> {
        let topology: Topology = toml::from_str(text)?;
        topology.validate()?;
        Ok(topology)
    }

    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TopologyError::Read { path: path.display().to_string(), source })?;
        Topology::parse(&text)
    }

    pub fn default_local() -> Topology {
        Topology::parse(DEFAULT_TOPOLOGY).expect("the embedded topology is valid")
    }

    pub fn validate(&self) -> Result<(), TopologyError> {
        let bad = |m: String| Err(TopologyError::Invalid(m));
        let active = self.sites.iter().filter(|s| s.role == "active").count();
        if active != 1 {
            return bad(format!("exactly one site must be active, found {active}"));
        }
        let mut names = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for site in &self.sites {
            if ledger_core::id::check_id(&site.name).is_err() || !names.insert(site.name.clone()) {
                return bad(format!("site name {:?} is invalid or repeated", site.name));
            }
            if site.role != "active" && site.role != "standby" {
                return bad(format!("site {}: role must be active or standby", site.name));
            }
            if site.nodes.is_empty() {
                return bad(format!("site {} has no nodes", site.name));
            }
            let mut ids = BTreeSet::new();
            for node in &site.nodes {
                if node.id == 0 || !ids.insert(node.id) {
                    return bad(format!("site {}: node id {} is zero or repeated", site.name, node.id));
                }
                for addr in [&node.client_addr, &node.peer_addr, &node.metrics_addr] {
                    if !addr.is_empty() && !addrs.insert(addr.clone()) {
                        return bad(format!("address {addr} is used twice"));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn site(&self, name: &str) -> Option<&SiteSpec> {
        self.sites.iter().find(|s| s.name == name)
    }

    pub fn active_site(&self) -> &SiteSpec {
        self.sites.iter().find(|s| s.role == "active").expect("validated: one active site")
    }

    /// Every client endpoint, active site first.
    pub fn all_endpoints(&self) -> Vec<String> {
        let mut sites: Vec<&SiteSpec> = self.sites.iter().collect();
        sites.sort_by_key(|s| s.role != "active");
        sites.iter().flat_map(|s| s.nodes.iter().map(|n| n.client_addr.clone())).collect()
    }
}

impl SiteSpec {
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_addr.clone()).collect()
    }

    pub fn node(&self, id: u64) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_topology_is_valid() {
        let t = Topology::default_local();
        assert_eq!(t.active_site().name, "primary");
        assert_eq!(t.active_site().nodes.len(), 3);
        assert_eq!(t.all_endpoints().len(), 6);
        let zones: BTreeSet<_> = t.active_site().nodes.iter().map(|n| n.zone.as_str()).collect();
        assert_eq!(zones.len(), 3, "one node per zone");
    }

    #[test]
    fn invalid_topologies_are_refused() {
        let two_active = DEFAULT_TOPOLOGY.replace("role = \"standby\"", "role = \"active\"");
        assert!(Topology::parse(&two_active).is_err());
        let repeated = DEFAULT_TOPOLOGY.replace("127.0.0.1:7102", "127.0.0.1:7101");
        assert!(Topology::parse(&repeated).is_err());
    }
}
