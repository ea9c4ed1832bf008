//! Quick reads (token checks) of one HTTP worker thread, run together in one read
//! transaction.
//!
//! Starting and ending a read transaction takes SQLite's locks on the WAL index: `fcntl`
//! calls and mutexes, about a sixth of a worker's time in the `me` benchmark, more than the
//! read itself. A worker that wakes up to several requests runs their reads one after the
//! other in a single transaction instead. The transaction begins after every read in it
//! was asked for, so each sees every commit that finished before its request arrived.

use std::cell::RefCell;

use anyhow::Context;
use diesel::Connection;

use super::{DbConnection, DbPool};

/// A read waiting for its batch; it reports its own outcome to its caller.
type Job = Box<dyn FnOnce(Result<&mut DbConnection, &anyhow::Error>) + Send>;

struct Queue {
    pool: DbPool,
    jobs: Vec<Job>,
    drain_scheduled: bool,
}

thread_local! {
    /// Present on threads that batch their quick reads (see [`batch_on_this_thread`]).
    static QUEUE: RefCell<Option<Queue>> = const { RefCell::new(None) };
}

/// Makes [`run_quick_read`](super::run_quick_read) on the calling thread gather reads into
/// batches. The thread must run a tokio `LocalSet`, as an actix worker does.
pub fn batch_on_this_thread(pool: DbPool) {
    QUEUE.with(|q| {
        *q.borrow_mut() = Some(Queue {
            pool,
            jobs: Vec::new(),
            drain_scheduled: false,
        })
    });
}

/// True when the calling thread batches its quick reads.
pub(super) fn batching() -> bool {
    QUEUE.with(|q| q.borrow().is_some())
}

/// Queues `work` for this thread's next batch and waits for its outcome.
pub(super) async fn run_batched<T, F>(work: F) -> anyhow::Result<T>
where
    F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |conn| {
        let outcome = match conn {
            Ok(conn) => work(conn),
            Err(e) => Err(anyhow::anyhow!("{e:#}")),
        };
        let _ = tx.send(outcome);
    });
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let q = q
            .as_mut()
            .expect("run_batched is called only where batching is on");
        q.jobs.push(job);
        if !q.drain_scheduled {
            q.drain_scheduled = true;
            // Runs after the tasks already woken on this thread, whose reads join this batch.
            tokio::task::spawn_local(drain());
        }
    });
    rx.await.context("a batched database read was dropped")?
}

/// Runs every queued read: right here when a pooled connection is free, otherwise on the
/// blocking pool.
async fn drain() {
    let Some((pool, jobs)) = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let q = q.as_mut()?;
        q.drain_scheduled = false;
        Some((q.pool.clone(), std::mem::take(&mut q.jobs)))
    }) else {
        return;
    };
    if let Some(mut conn) = pool.try_get() {
        run_together(&mut conn, jobs);
        return;
    }
    let _ = actix_web::web::block(move || match pool.get() {
        Ok(mut conn) => run_together(&mut conn, jobs),
        Err(e) => {
            let e = anyhow::Error::new(e).context("taking a database connection from the pool");
            for job in jobs {
                job(Err(&e));
            }
        }
    })
    .await;
}

fn run_together(conn: &mut DbConnection, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        // On its own a statement is its own transaction: BEGIN and COMMIT would add two.
        for job in jobs {
            job(Ok(conn));
        }
        return;
    }
    let mut jobs = Some(jobs);
    // A read transaction cannot fail halfway; should BEGIN itself fail, each runs alone.
    let together = conn.transaction(|conn| {
        for job in jobs.take().into_iter().flatten() {
            job(Ok(conn));
        }
        diesel::QueryResult::Ok(())
    });
    if let Err(e) = together {
        tracing::warn!(error = %e, "a read transaction failed");
    }
    for job in jobs.into_iter().flatten() {
        job(Ok(conn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    fn count_users(conn: &mut DbConnection) -> anyhow::Result<i64> {
        Ok(diesel::sql_query("SELECT COUNT(*) AS n FROM users")
            .get_result::<Count>(conn)?
            .n)
    }

    /// Runs `test` on a thread that batches its quick reads, as an HTTP worker does, over a
    /// fresh database.
    fn on_a_batching_thread<F, Fut>(test: F)
    where
        F: FnOnce(DbPool) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let dir = tempfile::tempdir().unwrap();
        let pool = super::super::connect(dir.path().join("q.db").to_str().unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            batch_on_this_thread(pool.clone());
            test(pool).await
        });
    }

    #[test]
    fn reads_asked_for_together_share_one_transaction_and_each_gets_its_answer() {
        on_a_batching_thread(|_| async move {
            let reads = (0..5).map(|i| {
                run_batched(move |conn| {
                    use diesel::connection::{AnsiTransactionManager, TransactionManager};
                    let in_transaction = <AnsiTransactionManager as TransactionManager<
                        DbConnection,
                    >>::transaction_manager_status_mut(
                        conn
                    )
                    .transaction_depth()?
                    .is_some();
                    Ok((i, count_users(conn)?, in_transaction))
                })
            });
            let answers = futures_util::future::join_all(reads).await;
            let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
            assert_eq!(
                answers,
                (0..5).map(|i| (i, 0, true)).collect::<Vec<_>>(),
                "every read answered in order, inside one transaction"
            );
        });
    }

    #[test]
    fn a_read_after_a_commit_sees_it() {
        on_a_batching_thread(|pool| async move {
            assert_eq!(run_batched(count_users).await.unwrap(), 0);
            diesel::sql_query(
                "INSERT INTO users (openid, session_key, login_count, created_at, updated_at,
                                    last_login_at)
                 VALUES ('oSeen', 'k', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00',
                         '2026-01-01 00:00:00')",
            )
            .execute(&mut pool.get().unwrap())
            .unwrap();
            assert_eq!(run_batched(count_users).await.unwrap(), 1);
        });
    }

    #[test]
    fn a_failing_read_fails_alone() {
        on_a_batching_thread(|_| async move {
            let bad = run_batched(|conn| {
                diesel::sql_query("SELECT no_such_column FROM users").execute(conn)?;
                Ok(0)
            });
            let (good, bad, good_again) =
                tokio::join!(run_batched(count_users), bad, run_batched(count_users));
            assert_eq!(good.unwrap(), 0);
            assert!(bad.unwrap_err().to_string().contains("no_such_column"));
            assert_eq!(good_again.unwrap(), 0);
        });
    }
}
