//! Roles and the permission strings of the reference API, and which role holds which.

use serde::{Deserialize, Serialize};

/// A permission a route can require. The strings are the reference API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    SourceView,
    SourceSync,
    SourceManage,
    CsvUpload,
    CsvDelete,
    QueryExecute,
    DbtView,
    DbtRun,
    GovernanceView,
    GovernanceManage,
    SchedulerView,
    SchedulerManage,
    NotebooksView,
    NotebooksExecute,
    NotebooksManage,
    ConfigView,
    ConfigManage,
    UsersManage,
    AuditView,
    PlatformManage,
    HealthView,
    LogsView,
}

impl Permission {
    pub(crate) const ALL: [Self; 22] = [
        Self::SourceView,
        Self::SourceSync,
        Self::SourceManage,
        Self::CsvUpload,
        Self::CsvDelete,
        Self::QueryExecute,
        Self::DbtView,
        Self::DbtRun,
        Self::GovernanceView,
        Self::GovernanceManage,
        Self::SchedulerView,
        Self::SchedulerManage,
        Self::NotebooksView,
        Self::NotebooksExecute,
        Self::NotebooksManage,
        Self::ConfigView,
        Self::ConfigManage,
        Self::UsersManage,
        Self::AuditView,
        Self::PlatformManage,
        Self::HealthView,
        Self::LogsView,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceView => "source.view",
            Self::SourceSync => "source.sync",
            Self::SourceManage => "source.manage",
            Self::CsvUpload => "csv.upload",
            Self::CsvDelete => "csv.delete",
            Self::QueryExecute => "query.execute",
            Self::DbtView => "dbt.view",
            Self::DbtRun => "dbt.run",
            Self::GovernanceView => "governance.view",
            Self::GovernanceManage => "governance.manage",
            Self::SchedulerView => "scheduler.view",
            Self::SchedulerManage => "scheduler.manage",
            Self::NotebooksView => "notebooks.view",
            Self::NotebooksExecute => "notebooks.execute",
            Self::NotebooksManage => "notebooks.manage",
            Self::ConfigView => "config.view",
            Self::ConfigManage => "config.manage",
            Self::UsersManage => "users.manage",
            Self::AuditView => "audit.view",
            Self::PlatformManage => "platform.manage",
            Self::HealthView => "health.view",
            Self::LogsView => "logs.view",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Editor,
    Viewer,
}

impl Role {
    pub const ALL: [Self; 3] = [Self::Admin, Self::Editor, Self::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Admin holds everything. An editor works with data but does not administer: no
    /// `*.manage` of governance, scheduler, config, users or platform, no audit log. A
    /// viewer only looks: the `*.view` permissions, less the audit log (which an editor,
    /// who outranks a viewer, may not see either).
    pub fn allows(self, p: Permission) -> bool {
        use Permission as P;
        match self {
            Self::Admin => true,
            Self::Editor => !matches!(
                p,
                P::GovernanceManage
                    | P::SchedulerManage
                    | P::ConfigManage
                    | P::UsersManage
                    | P::PlatformManage
                    | P::AuditView
            ),
            Self::Viewer => p.as_str().ends_with(".view") && p != P::AuditView,
        }
    }

    pub(crate) fn permissions(self) -> Vec<&'static str> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.allows(*p))
            .map(Permission::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_matches_the_brief() {
        assert_eq!(Role::Admin.permissions().len(), 22);
        let editor = Role::Editor.permissions();
        assert_eq!(editor.len(), 16);
        for p in [
            "source.manage",
            "csv.delete",
            "notebooks.manage",
            "dbt.run",
            "query.execute",
        ] {
            assert!(editor.contains(&p), "{p}");
        }
        assert_eq!(
            Role::Viewer.permissions(),
            [
                "source.view",
                "dbt.view",
                "governance.view",
                "scheduler.view",
                "notebooks.view",
                "config.view",
                "health.view",
                "logs.view"
            ]
        );
        let strings: std::collections::HashSet<_> =
            Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(strings.len(), Permission::ALL.len());
    }
}
