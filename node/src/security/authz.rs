//! Roles and what each may do: deny by default.
//!
//! A caller's role comes from its client certificate (see `security::tls`); in `--insecure`
//! mode every caller is `admin` under the name `insecure`. The matrix below is the single
//! source of truth; `docs/security.md` prints it and a test walks it against real RPCs.

use std::fmt;

/// A caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Core banking systems: accounts and transfers, and reads.
    Writer,
    /// Read-only access to accounts, transfers and history, personal data masked.
    Reader,
    /// The journal and its verification, balances; read-only, personal data masked.
    Auditor,
    /// Cluster and DR operations; no customer data.
    Operator,
    /// Everything.
    Admin,
    /// Another ledger node (peer Raft traffic, DR journal shipping).
    Node,
}

impl Role {
    pub const ALL: [Role; 6] = [Role::Writer, Role::Reader, Role::Auditor, Role::Operator, Role::Admin, Role::Node];

    pub fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Node => "node",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an RPC needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// CreateAccounts, UpdateAccounts, CreateTransfers.
    WriteLedger,
    /// LookupAccounts, LookupTransfers, GetAccountHistory.
    ReadLedger,
    /// Seeing personal data unmasked in responses.
    ReadPersonalData,
    /// Cluster.Status.
    ReadStatus,
    /// Bootstrap, AddNode, RemoveNode, TransferLeader.
    OperateCluster,
    /// Audit.ReadJournal.
    ReadJournal,
    /// Audit.GetJournalHead.
    ReadJournalHead,
    /// DR site operations (fence, promote, follow, failback) and their approvals.
    OperateSite,
    /// Audit.ReadSiteLog.
    ReadSiteLog,
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::WriteLedger,
        Action::ReadLedger,
        Action::ReadPersonalData,
        Action::ReadStatus,
        Action::OperateCluster,
        Action::ReadJournal,
        Action::ReadJournalHead,
        Action::OperateSite,
        Action::ReadSiteLog,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::WriteLedger => "write_ledger",
            Action::ReadLedger => "read_ledger",
            Action::ReadPersonalData => "read_personal_data",
            Action::ReadStatus => "read_status",
            Action::OperateCluster => "operate_cluster",
            Action::ReadJournal => "read_journal",
            Action::ReadJournalHead => "read_journal_head",
            Action::OperateSite => "operate_site",
            Action::ReadSiteLog => "read_site_log",
        }
    }
}

impl Action {
    /// The roles that may do this, for refusals that name what was needed.
    pub fn roles_allowed(self) -> Vec<Role> {
        Role::ALL.into_iter().filter(|role| allows(*role, self)).collect()
    }
}

/// The authorization matrix. Deny by default: only the pairs listed are allowed.
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    use Role::*;
    match role {
        Admin => true,
        Writer => matches!(action, WriteLedger | ReadLedger | ReadPersonalData | ReadStatus | ReadJournalHead),
        Reader => matches!(action, ReadLedger | ReadStatus | ReadJournalHead),
        Auditor => matches!(action, ReadLedger | ReadStatus | ReadJournal | ReadJournalHead | ReadSiteLog),
        // Operators read journals to ship, compare and reconcile sites; personal data in them
        // is sealed.
        Operator => {
            matches!(action, ReadStatus | OperateCluster | OperateSite | ReadJournal | ReadJournalHead | ReadSiteLog)
        }
        // Peers read the journal (DR shipping) and status (followers of the active site).
        Node => matches!(action, ReadStatus | ReadJournal | ReadJournalHead),
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The certificate's common name (or `insecure`); recorded in the journal.
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn insecure() -> Caller {
        Caller { name: "insecure".into(), role: Role::Admin }
    }

    pub fn may(&self, action: Action) -> bool {
        allows(self.role, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_deny_by_default_and_admin_may_all() {
        for action in Action::ALL {
            assert!(allows(Role::Admin, action));
        }
        assert!(!allows(Role::Reader, Action::WriteLedger));
        assert!(!allows(Role::Auditor, Action::WriteLedger));
        assert!(!allows(Role::Auditor, Action::ReadPersonalData));
        assert!(!allows(Role::Operator, Action::ReadLedger));
        assert!(!allows(Role::Node, Action::WriteLedger));
        assert!(allows(Role::Writer, Action::WriteLedger));
        assert!(allows(Role::Auditor, Action::ReadJournal));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()), Some(role));
        }
    }
}
