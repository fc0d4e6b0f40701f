//! The swap and what follows it: `swap` (the renames, in one transaction), `post-hook`,
//! `prune` (kept copies beyond `--keep`, in the order of [`crate::db::order`]: the copy
//! this run retired is never pruned and counts as one of them; a copy whose age cannot be
//! told is never pruned). After the swap the new database stays, whatever fails.

use anyhow::Context;

use super::incoming::Incoming;
use super::{free_previous_name, Session};
use crate::db::{Kind, Maintenance};
use crate::hooks::{self, Hook};

/// The new database is live.
pub(super) struct Swapped {
    m: Maintenance,
    /// The live database's name.
    pub db: String,
    /// The name the new database had while it loaded.
    incoming: String,
    /// The kept copy of the database that was live before, if there was one.
    previous: Option<String>,
}

impl Incoming {
    /// The renames: the live database (if any) becomes a kept copy, the incoming database
    /// the live one. Returns the kept copy's name.
    pub async fn swap(&mut self, s: &mut Session<'_>) -> anyhow::Result<Option<String>> {
        let (retired, retired_at) = free_previous_name(&self.m, &self.db).await?;
        let live_existed = self.m.exists(&self.db).await?;
        let terminated = self
            .m
            .swap(&self.db, &self.name, &retired, &retired_at)
            .await?;
        s.summary.sessions_terminated = terminated;
        let previous = live_existed.then_some(retired);
        s.summary.previous.clone_from(&previous);
        Ok(previous)
    }

    /// After [`Incoming::swap`] succeeded.
    pub fn swapped(self, previous: Option<String>) -> Swapped {
        Swapped {
            m: self.m,
            db: self.db,
            incoming: self.name,
            previous,
        }
    }
}

impl Swapped {
    /// `--post-hook`.
    pub async fn post_hook(&self, command: &str) -> anyhow::Result<()> {
        hooks::run(
            Hook::Post,
            command,
            &self.db,
            &self.incoming,
            self.previous.as_deref(),
        )
        .await
        .context("the new database is in place; kept copies were not pruned")
    }

    /// Drops kept copies beyond `--keep`, newest kept first ([`crate::db::order`]): the
    /// copy this run retired is one of the `N` and never dropped (unless `--keep 0`), a
    /// copy of unknown age is never dropped, and what made a copy's place differ from its
    /// name is a warning (in the report and on stderr); a copy in use is left, with a
    /// warning. Never fails: the new database is in place by now.
    pub async fn prune(&self, s: &mut Session<'_>) {
        let related = match self.m.related(&self.db).await {
            Ok(related) => related,
            Err(err) => {
                s.summary
                    .warnings
                    .push(format!("could not list kept copies to prune: {err:#}"));
                return;
            }
        };
        let kept: Vec<_> = related
            .into_iter()
            .filter(|d| d.kind == Kind::Previous)
            .collect();
        for warning in kept.iter().filter_map(|d| d.warning.as_ref()) {
            stg_core::format::warn(warning);
            s.summary.warnings.push(warning.clone());
        }
        let just_retired = self.previous.as_deref();
        // This run's copy first, whatever the order says, then the others in order.
        let mut room = s.config.keep;
        if s.config.keep > 0 && just_retired.is_some() {
            room -= 1;
        }
        let beyond = kept
            .iter()
            .filter(|d| d.retired.is_some())
            .filter(|d| s.config.keep == 0 || Some(d.name.as_str()) != just_retired)
            .skip(room)
            .map(|d| d.name.clone());
        for name in beyond.collect::<Vec<_>>() {
            match self.m.drop_if_unused(&name).await {
                Ok(()) => s.summary.dropped.push(name.clone()),
                Err(err) => s.summary.warnings.push(format!(
                    "kept {name} beyond --keep {}: {err:#}",
                    s.config.keep
                )),
            }
        }
    }
}
