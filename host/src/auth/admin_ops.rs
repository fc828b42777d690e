//! Changes to users, shared by the admin API and `baton user` on a data
//! directory, so that both validate the same way.

use super::roles::RoleTable;
use super::totp::{self, Enrolment};
use super::users::{self, User, UserError, UserStore, UserView};
use serde::Deserialize;

/// A create-or-update of one user (`PUT /admin/v1/users/{name}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A new password; required when creating.
    pub password: Option<String>,
    /// Replaces the roles.
    pub roles: Option<Vec<String>>,
    /// Replaces the namespaces (default for a new user: `*`).
    pub namespaces: Option<Vec<String>>,
    /// `enroll` generates a new TOTP secret (returned once); `remove` drops it.
    pub totp: Option<TotpChange>,
}

/// What to do with the second factor.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TotpChange {
    /// Generate a new secret.
    Enroll,
    /// Remove the second factor.
    Remove,
}

/// The result of [`apply`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpdateOutcome {
    /// The user as stored now.
    pub user: UserView,
    /// Whether the user was created.
    pub created: bool,
    /// Present once, right after `totp = "enroll"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp: Option<Enrolment>,
}

/// Why an update was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Bad name, weak password, storage failure.
    #[error(transparent)]
    User(#[from] UserError),
    /// A new user needs a password.
    #[error("creating user `{0}` needs a `password`")]
    PasswordRequired(String),
    /// Unknown role.
    #[error("there is no role `{0}`; define it in [auth.roles] or use one of: {1}")]
    UnknownRole(String, String),
    /// Empty namespace name.
    #[error("namespace names must be non-empty")]
    BadNamespace,
    /// The roles given would leave no administrator.
    #[error("`{0}` is the last user with the admin role; give another user that role first")]
    LastAdmin(String),
}

/// Applies `update` to user `name`, creating it when absent (password
/// hashes are computed off the async threads).
pub async fn apply(
    users: &UserStore,
    roles: &RoleTable,
    issuer: &str,
    name: &str,
    update: UserUpdate,
) -> Result<UpdateOutcome, UpdateError> {
    users::validate_name(name)?;
    for r in update.roles.iter().flatten() {
        if !roles.knows(r) {
            return Err(UpdateError::UnknownRole(
                r.clone(),
                roles.names().join(", "),
            ));
        }
    }
    if update
        .namespaces
        .iter()
        .flatten()
        .any(|n| n.trim().is_empty())
    {
        return Err(UpdateError::BadNamespace);
    }
    let now = crate::auth::now_rfc3339();
    let existing = users.get(name).await?;
    let created = existing.is_none();
    let mut user = match existing {
        Some(u) => u,
        None => {
            let Some(pw) = &update.password else {
                return Err(UpdateError::PasswordRequired(name.to_string()));
            };
            User::new(name, hash_off_thread(pw).await?, vec![], &now)
        }
    };
    if let (Some(pw), false) = (&update.password, created) {
        user.password_hash = hash_off_thread(pw).await?;
        // Every token issued before the change stops working.
        user.token_epoch += 1;
        user.tokens_since = crate::auth::tokens::now_secs();
    }
    if let Some(r) = update.roles {
        if is_admin(&user) && !r.iter().any(|r| r == ADMIN_ROLE) && admins(users).await? == 1 {
            return Err(UpdateError::LastAdmin(name.to_string()));
        }
        user.roles = r;
    }
    if let Some(n) = update.namespaces {
        user.namespaces = n;
    }
    let mut enrolment = None;
    match update.totp {
        Some(TotpChange::Enroll) => {
            let e = totp::enrol(issuer, name);
            user.totp_secret = Some(e.secret.clone());
            enrolment = Some(e);
        }
        Some(TotpChange::Remove) => user.totp_secret = None,
        None => {}
    }
    user.updated_at = now;
    users.put(&user).await?;
    Ok(UpdateOutcome {
        user: UserView::from(&user),
        created,
        totp: enrolment,
    })
}

/// Why a user could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No such user.
    #[error("there is no user `{0}`")]
    Unknown(String),
    /// Deleting would leave no administrator.
    #[error("`{0}` is the last user with the admin role; give another user that role first")]
    LastAdmin(String),
    /// Storage failed.
    #[error(transparent)]
    User(#[from] UserError),
}

/// [`users::hash_password`] on a blocking thread: argon2 takes tens of
/// milliseconds of CPU.
async fn hash_off_thread(password: &str) -> Result<String, UserError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || users::hash_password(&password))
        .await
        .map_err(|e| UserError::Storage(format!("the hashing task failed: {e}")))?
}

/// The role whose last holder can be neither deleted nor demoted.
const ADMIN_ROLE: &str = "admin";

fn is_admin(user: &User) -> bool {
    user.roles.iter().any(|r| r == ADMIN_ROLE)
}

async fn admins(users: &UserStore) -> Result<usize, UserError> {
    Ok(users.list().await?.iter().filter(|u| is_admin(u)).count())
}

/// Deletes user `name`, refusing to delete the last holder of the `admin` role.
pub async fn delete(users: &UserStore, name: &str) -> Result<(), DeleteError> {
    let all = users.list().await?;
    let Some(target) = all.iter().find(|u| u.name == name) else {
        return Err(DeleteError::Unknown(name.to_string()));
    };
    if is_admin(target) && all.iter().filter(|u| is_admin(u)).count() == 1 {
        return Err(DeleteError::LastAdmin(name.to_string()));
    }
    users.delete(name).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::AuthConfig;

    fn setup() -> (tempfile::TempDir, UserStore, RoleTable) {
        let dir = tempfile::tempdir().unwrap();
        let users = UserStore::new(std::sync::Arc::new(
            crate::store::SledStore::open(dir.path()).unwrap(),
        ));
        (
            dir,
            users,
            RoleTable::new(AuthConfig::default().role_table()),
        )
    }

    fn update(password: Option<&str>, roles: &[&str]) -> UserUpdate {
        UserUpdate {
            password: password.map(str::to_string),
            roles: Some(roles.iter().map(|r| r.to_string()).collect()),
            ..UserUpdate::default()
        }
    }

    #[tokio::test]
    async fn create_needs_a_password_and_known_roles() {
        let (_d, users, roles) = setup();
        let e = apply(&users, &roles, "baton", "ann", update(None, &["viewer"]))
            .await
            .unwrap_err();
        assert!(matches!(e, UpdateError::PasswordRequired(_)));
        let e = apply(
            &users,
            &roles,
            "baton",
            "ann",
            update(Some("longenough"), &["wizard"]),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("no role `wizard`"), "{e}");
        let out = apply(
            &users,
            &roles,
            "baton",
            "ann",
            update(Some("longenough"), &["viewer"]),
        )
        .await
        .unwrap();
        assert!(out.created);
        assert_eq!(out.user.namespaces, vec!["*".to_string()]);
        let out = apply(&users, &roles, "baton", "ann", update(None, &["operator"]))
            .await
            .unwrap();
        assert!(!out.created);
        assert_eq!(out.user.roles, vec!["operator".to_string()]);
    }

    #[tokio::test]
    async fn totp_enrolment_is_returned_once_and_stored() {
        let (_d, users, roles) = setup();
        let mut u = update(Some("longenough"), &[]);
        u.totp = Some(TotpChange::Enroll);
        let out = apply(&users, &roles, "baton", "ann", u).await.unwrap();
        let secret = out.totp.unwrap().secret;
        assert!(out.user.mfa);
        assert_eq!(
            users.get("ann").await.unwrap().unwrap().totp_secret,
            Some(secret)
        );
        let json = serde_json::to_string(&out.user).unwrap();
        assert!(!json.contains("hash"), "{json}");
    }

    #[tokio::test]
    async fn the_last_admin_cannot_be_deleted() {
        let (_d, users, roles) = setup();
        apply(
            &users,
            &roles,
            "baton",
            "root",
            update(Some("longenough"), &["admin"]),
        )
        .await
        .unwrap();
        apply(
            &users,
            &roles,
            "baton",
            "ann",
            update(Some("longenough"), &["viewer"]),
        )
        .await
        .unwrap();
        assert!(matches!(
            delete(&users, "root").await,
            Err(DeleteError::LastAdmin(_))
        ));
        assert!(matches!(
            delete(&users, "ghost").await,
            Err(DeleteError::Unknown(_))
        ));
        delete(&users, "ann").await.unwrap();
    }

    #[tokio::test]
    async fn the_last_admin_cannot_give_up_the_role() {
        let (_d, users, roles) = setup();
        let admin = update(Some("longenough"), &["admin"]);
        apply(&users, &roles, "baton", "root", admin.clone())
            .await
            .unwrap();
        let e = apply(&users, &roles, "baton", "root", update(None, &["viewer"]))
            .await
            .unwrap_err();
        assert!(matches!(e, UpdateError::LastAdmin(_)), "{e}");
        assert_eq!(
            users.get("root").await.unwrap().unwrap().roles,
            vec!["admin"]
        );
        // With a second admin, the first may step down.
        apply(&users, &roles, "baton", "ann", admin).await.unwrap();
        apply(&users, &roles, "baton", "root", update(None, &["viewer"]))
            .await
            .unwrap();
        assert_eq!(
            users.get("root").await.unwrap().unwrap().roles,
            vec!["viewer"]
        );
    }
}
