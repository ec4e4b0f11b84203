//! What a worker process shares between its task runs: built once, handed to every handler.
//!
//! In: the compiled program and where its deployment comes from. Out: [`Services`]: the
//! program, the machine's facts, the clock handlers read the time from, the current deployment
//! and the long-lived resources the pipeline stages hold (the metadata store, the outbox,
//! detector processes, messengers). A resource is opened on first use, so a
//! worker that never needs it never pays for it, and dropped after a failure, so the next task
//! opens it afresh (a replaced or repaired file is picked up without a restart).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use camino::Utf8PathBuf;
use jiff::Timestamp;

use super::TaskError;
use crate::detect::Engines;
use crate::host::Host;
use crate::messaging::Messenger;
use crate::spec::data::Deployment;
use crate::spec::{Program, tasks};
use crate::store::{self, NewMessage, Outbox, Store};

/// Where handlers read the time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// Always this instant (tests).
    Fixed(Timestamp),
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// Where the deployment that recordings belong to comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentSource {
    /// The deployment file `acoupi deploy` wrote (`config/deployment.json`) before starting
    /// the units; a missing or unreadable file fails the task, naming the file. `acoupi worker`
    /// (what the units run) runs so.
    File(Utf8PathBuf),
    /// The deployment file's deployment while it is active; without one, the home's implicit
    /// deployment: the store's current deployment while it has not ended, else a new one named
    /// after the program. `acoupi run` and `acoupi task run` run so.
    FileOrImplicit(Utf8PathBuf),
}

/// The services of one worker process.
#[derive(Debug)]
pub struct Services {
    /// The compiled program.
    pub program: Arc<Program>,
    /// This machine, its device id replaced by the program's `device_id` when set.
    pub host: Host,
    /// The clock.
    pub clock: Clock,
    /// Where the current deployment comes from.
    pub deployment: DeploymentSource,
    /// The metadata store, once opened.
    store: Mutex<Option<Store>>,
    /// The outbox, once opened.
    outbox: Mutex<Option<Outbox>>,
    /// The program's message destinations, once set up.
    messengers: Mutex<Option<Arc<Vec<Messenger>>>>,
    /// The implicit deployment, once chosen (so every recording of a run shares it).
    implicit: Mutex<Option<Deployment>>,
    /// The program's detectors, once a detection asked for them.
    engines: OnceLock<Arc<Engines>>,
}

impl Services {
    /// The services of a foreground process (`acoupi run`, `acoupi task run`) running
    /// `program` on this machine's clock: recordings go under the home's active deployment,
    /// else its implicit one.
    pub fn new(program: Arc<Program>) -> Arc<Self> {
        let file = crate::spec::layout::deployment_file(&program.home);
        Self::with_deployment(program, DeploymentSource::FileOrImplicit(file))
    }

    /// [`Services::new`] reading the time from `clock` (tests of what depends on the date).
    pub fn with_clock(program: Arc<Program>, clock: Clock) -> Arc<Self> {
        let file = crate::spec::layout::deployment_file(&program.home);
        let mut services = Self::build(program, DeploymentSource::FileOrImplicit(file));
        services.clock = clock;
        Arc::new(services)
    }

    /// The services of a deployed worker (`acoupi worker`): recordings go under the home's
    /// deployment file, which must exist.
    pub fn deployed(program: Arc<Program>) -> Arc<Self> {
        let file = crate::spec::layout::deployment_file(&program.home);
        Self::with_deployment(program, DeploymentSource::File(file))
    }

    /// The services of a process running `program` with its deployment from `deployment`.
    pub fn with_deployment(program: Arc<Program>, deployment: DeploymentSource) -> Arc<Self> {
        Arc::new(Self::build(program, deployment))
    }

    fn build(program: Arc<Program>, deployment: DeploymentSource) -> Services {
        let mut host = Host::detect();
        if let Some(id) = &program.device_id {
            host.device_id.clone_from(id);
        }
        Services {
            program,
            host,
            clock: Clock::System,
            deployment,
            store: Mutex::new(None),
            outbox: Mutex::new(None),
            messengers: Mutex::new(None),
            implicit: Mutex::new(None),
            engines: OnceLock::new(),
        }
    }

    /// The program's detectors, built on first use. A serve-mode program gets one process per
    /// `detect` task that can run at once: the concurrency of the workers consuming the
    /// `detect` task's queue.
    pub fn engines(&self) -> Arc<Engines> {
        Arc::clone(self.engines.get_or_init(|| {
            let program = &self.program;
            let queue = program
                .tasks
                .iter()
                .find(|t| t.name == tasks::DETECT)
                .map(|t| t.queue.as_str());
            let slots: u32 = program
                .workers
                .iter()
                .filter(|w| queue.is_some_and(|q| w.queues.iter().any(|wq| wq == q)))
                .map(|w| w.concurrency)
                .sum();
            Engines::new(program, slots.max(1) as usize)
        }))
    }

    /// Starts the detector programs ahead of the first `detect` task when `queues` (a worker's)
    /// include that task's queue: a deployed detection worker loads its models at start.
    pub fn warm_detectors_for(&self, queues: &[String]) {
        let program = &self.program;
        let detects = program
            .tasks
            .iter()
            .find(|t| t.name == tasks::DETECT)
            .is_some_and(|t| queues.contains(&t.queue));
        if detects && !program.detectors.is_empty() {
            self.engines().warm();
        }
    }

    /// Stops what the services keep running (detector processes). Call once, when the
    /// worker has stopped taking tasks.
    pub async fn shutdown(&self) {
        if let Some(engines) = self.engines.get() {
            engines.shutdown().await;
        }
    }

    /// Runs `f` with the metadata store on a blocking thread, opening the store on first use.
    /// A store error becomes a task error naming the file; after one, the connection is
    /// dropped and the next call opens the file again.
    pub async fn with_store<T, F>(self: &Arc<Self>, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &Services) -> Result<T, store::Error> + Send + 'static,
    {
        self.with_file(|s| &s.store, |p| Store::open(&p.paths.metadata), f)
            .await
    }

    /// Runs `f` with the outbox (the message store, `paths.messages`) as
    /// [`Services::with_store`] runs it with the metadata store.
    pub async fn with_outbox<T, F>(self: &Arc<Self>, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Outbox, &Services) -> Result<T, store::Error> + Send + 'static,
    {
        self.with_file(|s| &s.outbox, |p| Outbox::open(&p.paths.messages), f)
            .await
    }

    /// The destinations of the program's messages (none without `messaging`), set up on
    /// first use. Secrets are read then: an unset one fails this call, naming it, and the next
    /// call tries again (a secret file that appears later is picked up without a restart).
    pub fn messengers(&self) -> Result<Arc<Vec<Messenger>>, TaskError> {
        let mut slot = self
            .messengers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = slot.as_ref() {
            return Ok(Arc::clone(m));
        }
        let built = match &self.program.messaging {
            Some(m) => Messenger::from_spec(m).map_err(|e| TaskError::Permanent(e.to_string()))?,
            None => Vec::new(),
        };
        Ok(Arc::clone(slot.insert(Arc::new(built))))
    }

    /// Adds `messages` to the outbox (nothing to do for none). Ids already stored are left
    /// alone, so a task run again pushes the same messages harmlessly.
    pub async fn push_messages(
        self: &Arc<Self>,
        messages: Vec<NewMessage>,
    ) -> Result<usize, TaskError> {
        if messages.is_empty() {
            return Ok(0);
        }
        self.with_outbox(move |o, _| o.push(&messages)).await
    }

    /// Runs `f` on a blocking thread with the connection in `slot`, opened with `open` on first
    /// use and dropped after an error.
    async fn with_file<R, T, F>(
        self: &Arc<Self>,
        slot: fn(&Services) -> &Mutex<Option<R>>,
        open: fn(&Program) -> Result<R, store::Error>,
        f: F,
    ) -> Result<T, TaskError>
    where
        R: Send + 'static,
        T: Send + 'static,
        F: FnOnce(&mut R, &Services) -> Result<T, store::Error> + Send + 'static,
    {
        let services = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut slot = slot(&services)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let file = match slot.as_mut() {
                Some(s) => s,
                None => slot.insert(open(&services.program)?),
            };
            let result = f(file, &services);
            if result.is_err() {
                *slot = None;
            }
            result
        })
        .await
        .map_err(|e| TaskError::Transient(format!("the store thread failed: {e}")))?
        .map_err(TaskError::from)
    }

    /// Frees what the open metadata store and outbox cache, each only when no task holds it:
    /// called when the worker has no task running.
    pub fn release_idle_memory(&self) {
        if let Ok(store) = self.store.try_lock()
            && let Some(store) = store.as_ref()
        {
            store.release_memory();
        }
        if let Ok(outbox) = self.outbox.try_lock()
            && let Some(outbox) = outbox.as_ref()
        {
            outbox.release_memory();
        }
    }

    /// The implicit deployment chosen for this process, if one was.
    pub(super) fn implicit_deployment(&self) -> Option<Deployment> {
        self.implicit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Remembers the implicit deployment for the rest of the process.
    pub(super) fn set_implicit_deployment(&self, d: &Deployment) {
        *self.implicit.lock().unwrap_or_else(PoisonError::into_inner) = Some(d.clone());
    }
}

impl From<store::Error> for TaskError {
    /// Failures that may pass (a lock held too long, a full or read-only disk, a file that
    /// cannot be opened now) are retried; a corrupt file, a newer schema or a bad value will
    /// not mend by retrying.
    fn from(e: store::Error) -> Self {
        use store::Error as E;
        match e {
            E::Locked { .. }
            | E::DiskFull { .. }
            | E::ReadOnly { .. }
            | E::CannotOpen { .. }
            | E::CreateDir { .. }
            | E::Sqlite { .. } => TaskError::Transient(e.to_string()),
            E::Missing { .. }
            | E::NotADatabase { .. }
            | E::NotAStore { .. }
            | E::Corrupt { .. }
            | E::NewerSchema { .. }
            | E::UnknownRecording { .. }
            | E::Constraint { .. }
            | E::BadValue { .. } => TaskError::Permanent(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(program_block: &str) -> Arc<Program> {
        let manifest = format!("{program_block}\nmicrophone \"m\" {{ synthetic \"sine\" }}\n");
        let source = crate::compile::from_bytes("t.kdl", "/t.kdl".into(), manifest.into());
        let model = crate::compile::check(&source)
            .model
            .expect("a valid manifest");
        let ctx = crate::plan::BuildContext {
            home: "/home/pi/.acoupi".into(),
            exe: "/usr/bin/acoupi".into(),
            source_path: "/t.kdl".into(),
        };
        Arc::new(crate::plan::lower(model, &ctx).program)
    }

    #[test]
    fn the_manifests_device_id_replaces_the_detected_one() {
        let detected = Host::detect().device_id;
        assert_eq!(
            Services::new(program("program \"p\"")).host.device_id,
            detected
        );
        let set = Services::new(program("program \"p\" { device-id \"site-7-pi\" }"));
        assert_eq!(set.host.device_id, "site-7-pi");
        assert_eq!(set.host.hostname, Host::detect().hostname);
    }
}
