//! gRPC health (`grpc.health.v1.Health`) and reflection for the client port.
//!
//! Health answers per service name, so a load balancer or Kubernetes probe can tell a node
//! that runs from one that takes writes:
//!
//! | service name | SERVING when |
//! |---|---|
//! | `""` (the node) | the process serves the client port |
//! | `ledger.v1.Ledger` | this node takes writes now: its site is active, unfenced and not superseded, a leader is known, this node (if it leads) has its quorum, and the RPO guardrail does not throttle; NOT_SERVING on a standby, a fenced or superseded site, a node without quorum or leader |
//! | `ledger.v1.Cluster`, `ledger.v1.Audit` | the process serves them (reads of status and journal work on every node) |
//! | `ledger.dr.Shipping` | on a standby: shipping from the active site is not halted; on an active site always (nothing to ship here) |
//!
//! Reflection serves both `grpc.reflection.v1` and `grpc.reflection.v1alpha` (what most
//! clients still speak), and lists only what this port serves: the three client services,
//! health and reflection. The peer service has its own port and is not listed.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::ledger;
use ledger_core::site::SiteRole;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::dr::DrMonitor;
use crate::raft::replica::Replica;

/// Health name of the write path.
pub const LEDGER_SERVICE: &str = "ledger.v1.Ledger";
/// Health name of the DR shipping on this site.
pub const SHIPPING_SERVICE: &str = "ledger.dr.Shipping";
/// Services that serve while the process runs.
const ALWAYS_SERVING: &[&str] = &["", "ledger.v1.Cluster", "ledger.v1.Audit"];
/// What reflection lists: the client port's services only.
const REFLECTED: &[&str] = &[
    "ledger.v1.Ledger",
    "ledger.v1.Cluster",
    "ledger.v1.Audit",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];
/// How often health follows the node's state.
const REFRESH_MS: u64 = 250;

/// Whether this node takes writes now, and why not.
pub fn write_readiness(replica: &Replica, monitor: &DrMonitor) -> Result<(), String> {
    if let Some(refusal) = ledger::write_refusal(&replica.reader.meta().site) {
        return Err(refusal.to_string());
    }
    if replica.metrics().current_leader.is_none() {
        return Err("no leader is known".into());
    }
    if replica.quorum_lost() {
        return Err("this leader has lost its quorum".into());
    }
    if monitor.throttled() {
        return Err("the RPO guardrail throttles writes".into());
    }
    Ok(())
}

/// Sets every name before the port serves: a probe never gets NOT_FOUND for a documented
/// name. Writes start NOT_SERVING until [`follow`] has looked at the node.
pub async fn init(reporter: &HealthReporter) {
    for name in ALWAYS_SERVING {
        reporter.set_service_status(*name, ServingStatus::Serving).await;
    }
    reporter.set_service_status(LEDGER_SERVICE, ServingStatus::NotServing).await;
    reporter.set_service_status(SHIPPING_SERVICE, ServingStatus::NotServing).await;
}

/// Keeps the health statuses in step with the node, every `REFRESH_MS`, until aborted.
pub async fn follow(reporter: HealthReporter, replica: Arc<Replica>, monitor: Arc<DrMonitor>) {
    let mut tick = tokio::time::interval(Duration::from_millis(REFRESH_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let writes = match write_readiness(&replica, &monitor) {
            Ok(()) => ServingStatus::Serving,
            Err(_) => ServingStatus::NotServing,
        };
        reporter.set_service_status(LEDGER_SERVICE, writes).await;
        let site = replica.reader.meta().site;
        let shipping = if site.role == SiteRole::Standby && site.watermark.halted.is_some() {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        };
        reporter.set_service_status(SHIPPING_SERVICE, shipping).await;
    }
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    // Both reflection versions describe both (each lists the other), so register their
    // descriptors ourselves rather than let each builder add only its own.
    let mut builder = tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(ledger_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    for name in REFLECTED {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Reflection, both protocol versions.
pub fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    Ok((reflection_builder().build_v1()?, reflection_builder().build_v1alpha()?))
}
