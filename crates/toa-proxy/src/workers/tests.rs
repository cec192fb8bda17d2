//! The accept workers under real listeners and real connections.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The connections a worker already has are served during a burst of new ones.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_new_connections_lets_the_workers_other_tasks_run() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    // Room for the whole burst in the kernel's queue, whatever the bound.
    let listener = socket.listen(1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let burst = 3 * MAX_ACCEPTS_IN_A_ROW as usize;
    // Loopback completes each handshake inside connect(): all of them are queued.
    let _clients: Vec<_> = (0..burst)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut acceptor = Acceptor::new(listener.into_std().unwrap()).unwrap();
    // The first accept waits for the listener's first readiness event, which would
    // let any task run; the others find the queue full.
    let mut accepted = vec![acceptor.accept().await.unwrap()];
    let counted = Arc::new(AtomicUsize::new(0));
    let seen_by_other_task = tokio::spawn({
        let counted = counted.clone();
        async move { counted.load(Ordering::Relaxed) }
    });
    while accepted.len() < burst {
        accepted.push(acceptor.accept().await.unwrap());
        counted.store(accepted.len(), Ordering::Relaxed);
    }
    let seen = seen_by_other_task.await.unwrap();
    assert!(
        seen <= MAX_ACCEPTS_IN_A_ROW as usize,
        "another task first ran after {seen} of {burst} queued connections were accepted"
    );
}

/// Holds `count` connections counted on `worker`, each in a task on its runtime as a
/// real connection is, until the returned token is cancelled.
fn hold_connections(workers: &AcceptWorkers, worker: usize, count: usize) -> CancellationToken {
    let held = CancellationToken::new();
    for _ in 0..count {
        let task = workers
            .loads
            .counted(worker, held.clone().cancelled_owned());
        workers.runtimes[worker].spawn(task);
    }
    held
}

/// Waits until `worker` counts `connections`.
fn wait_for_load(loads: &Loads, worker: usize, connections: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while loads.of(worker) != connections {
        assert!(
            std::time::Instant::now() < deadline,
            "worker {worker} counts {} connections, not {connections}",
            loads.of(worker)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every idle connection keeps its task: counting it must not make the task larger.
#[test]
fn counting_a_connection_adds_nothing_to_its_task() {
    assert_eq!(
        size_of::<loads::Counted<[u64; 98]>>(),
        size_of::<[u64; 98]>()
    );
}

#[test]
fn a_worker_hands_over_only_when_it_has_more_than_the_margin_above_the_least_busy() {
    let workers = AcceptWorkers::with_count(2).unwrap();
    let loads = &workers.loads;
    let on_first = hold_connections(&workers, 0, HANDOFF_MARGIN);
    assert_eq!(loads.of(0), HANDOFF_MARGIN);
    assert_eq!(
        loads.choose(0),
        0,
        "{HANDOFF_MARGIN} above the other: within the margin"
    );
    let one_more = hold_connections(&workers, 0, 1);
    assert_eq!(loads.choose(0), 1, "one above the margin: handed over");
    assert_eq!(loads.choose(1), 1, "the least busy worker keeps its own");
    on_first.cancel();
    one_more.cancel();
    wait_for_load(loads, 0, 0);
    assert_eq!(loads.choose(0), 0, "level again: each keeps its own");
    assert_eq!(loads.of(1), 0, "nothing was counted on the other");
}

/// A worker with more than the margin of connections above the other gives the next
/// one to the other worker. That worker serves it on its own thread and
/// counts it while it lives; the listener's task tracker, which a drain waits for,
/// holds it.
#[test]
fn a_busy_worker_hands_a_new_connection_to_the_other_which_serves_it() {
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let workers = AcceptWorkers::with_count(2).unwrap();
    let placement = workers.placement(&CancellationToken::new());
    let tasks = TaskTracker::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // One connection accepted by worker `me` and echoed by whichever worker serves it:
    // that worker's thread, its count and the tracker's, as the serving task saw them.
    let serve_one = |me: usize| -> (String, usize, usize) {
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let (loads, tracked) = (workers.loads.clone(), tasks.clone());
        let _enter = workers.runtimes[me].enter();
        placement
            .dispatch(me, &tasks, accepted, move |mut stream, _sweep| async move {
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.unwrap();
                let thread = std::thread::current().name().unwrap().to_string();
                let worker: usize = thread["toa-accept-".len()..].parse().unwrap();
                seen_tx
                    .send((thread, loads.of(worker), tracked.len()))
                    .unwrap();
                stream.write_all(&byte).await.unwrap();
            })
            .unwrap();
        client.write_all(b"x").unwrap();
        let mut echoed = [0u8; 1];
        client.read_exact(&mut echoed).unwrap();
        assert_eq!(&echoed, b"x");
        seen_rx.recv_timeout(Duration::from_secs(5)).unwrap()
    };
    // Every served connection ends, and with it its count and its place in the tracker.
    let settle = || {
        wait_for_load(&workers.loads, 0, 0);
        wait_for_load(&workers.loads, 1, 0);
        // The tracker lets go of a task just after its count: the task's future,
        // and with it the guard, is dropped before the tracker's token.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !tasks.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "a served connection stays tracked"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    let kept = serve_one(0);
    assert_eq!(
        kept,
        ("toa-accept-0".to_string(), 1, 1),
        "an idle worker keeps its connection"
    );
    settle();
    let busy = hold_connections(&workers, 0, HANDOFF_MARGIN + 1);
    let handed = serve_one(0);
    assert_eq!(
        handed,
        ("toa-accept-1".to_string(), 1, 1),
        "a busy worker hands it over"
    );
    busy.cancel();
    settle();
}
