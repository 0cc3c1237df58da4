//! The named registry shared over NATS (a `JetStream` key-value bucket): two runtimes, as two processes
//! of a deployment would be, see each other's names, typed; a name is unique across them and
//! freed when its agent terminates.
//!
//! Without `nats-server` installed this test says so and passes, unless
//! `QORCH_REQUIRE_NATS=1` (set by `.ci/run`, which installs it) makes that a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qorch_net::{NatsConfig, NatsRegistry};
use qorch_protocol::{AgentRef, Message};
use qorch_runtime::{Agent, AgentResult, Context, QuantumOrchestrator, RegistryError};

struct Named;

#[derive(Debug)]
struct Ping;

impl Message for Ping {}

impl Agent for Named {
    type Msg = Ping;

    fn handle(&mut self, _: Ping, ctx: &mut Context<'_, Ping>) -> AgentResult {
        ctx.stop();
        Ok(())
    }
}

#[test]
fn names_are_shared_typed_and_unique_across_processes() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_str().unwrap().to_owned();
    let Some(server) = qorch_net::local_server::start_or_skip(
        &["-js", "--store_dir", &dir],
        "names_are_shared_typed_and_unique_across_processes",
    ) else {
        return;
    };
    let exec = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    exec.block_on(async {
        let config = NatsConfig::new(server.url());
        let registry = |name: &'static str| {
            let config = config.clone();
            async move {
                let conn = config.connect(name).await.unwrap();
                Arc::new(NatsRegistry::open(&conn, "qorch-names").await.unwrap())
            }
        };
        let (ra, rb) = (registry("a").await, registry("b").await);
        let a = QuantumOrchestrator::<Named>::builder()
            .workers(1)
            .registry(ra)
            .build()
            .unwrap();
        let b = QuantumOrchestrator::<Named>::builder()
            .workers(1)
            .registry(rb)
            .build()
            .unwrap();
        let ca = a.manager().create_cluster("a").unwrap();
        let cb = b.manager().create_cluster("b").unwrap();
        let in_a = a.manager().spawn(ca.into(), |_| Named).unwrap();
        // Processes of one deployment number their agents apart (a distributed run
        // spawns with chosen ids); here the second runtime skips an id.
        let _skipped = b.manager().spawn(cb.into(), |_| Named).unwrap();
        let in_b = b.manager().spawn(cb.into(), |_| Named).unwrap();
        assert_ne!(in_a.id(), in_b.id());
        let (ha, hb) = (a.handle(), b.handle());

        ha.register("leader", &in_a).await.unwrap();
        // The other process finds it, typed.
        let found: AgentRef<Ping> = hb.lookup("leader").await.unwrap();
        assert_eq!(found.id(), in_a.id());
        match hb.lookup::<u64>("leader").await {
            Err(RegistryError::WrongType {
                expected, actual, ..
            }) => {
                assert_eq!(expected, "u64");
                assert_eq!(actual, "Ping");
            }
            other => panic!("{other:?}"),
        }
        // Unique across processes.
        assert_eq!(
            hb.register("leader", &in_b).await,
            Err(RegistryError::Taken {
                name: "leader".into(),
                holder: in_a.id()
            })
        );
        assert!(matches!(
            hb.lookup::<Ping>("nobody").await,
            Err(RegistryError::NotFound(_))
        ));
        // Odd characters are fine.
        hb.register("workers/ü 1", &in_b).await.unwrap();
        assert_eq!(
            ha.lookup::<Ping>("workers/ü 1").await.unwrap().id(),
            in_b.id()
        );

        // The holder terminates: the name is freed everywhere.
        ha.send(&in_a, Ping).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match hb.register("leader", &in_b).await {
                Ok(()) => break,
                Err(RegistryError::Taken { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("the name was not freed: {e}"),
            }
        }
        assert_eq!(ha.lookup::<Ping>("leader").await.unwrap().id(), in_b.id());
        assert!(hb.unregister("leader", &in_b).await.unwrap());
        assert!(!hb.unregister("leader", &in_b).await.unwrap());
        a.shutdown_async().await;
        b.shutdown_async().await;
    });
}
