//! The real PostgreSQL the HA tests build on: it starts, keeps what was committed across a
//! crash, refuses connections while down, and cleans up after itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use medic_sandbox::postgres::{PostgresError, RealPostgres};

fn start() -> RealPostgres {
    match RealPostgres::start() {
        Ok(server) => server,
        Err(error @ PostgresError::Missing) => panic!("{error}"),
        Err(error) => panic!("PostgreSQL did not start: {error}"),
    }
}

#[test]
fn committed_rows_survive_an_immediate_stop_and_the_server_refuses_while_down() {
    let mut server = start();
    assert!(server.url().starts_with("postgres://postgres@127.0.0.1:"));
    assert_eq!(server.psql("SELECT 41 + 1").unwrap(), "42");
    server
        .psql("CREATE TABLE alerts (id BIGINT PRIMARY KEY); INSERT INTO alerts VALUES (1), (2)")
        .unwrap();

    server.crash().unwrap();
    assert!(!server.is_running());
    let refused = server.psql("SELECT 1").unwrap_err();
    assert!(
        matches!(
            refused,
            PostgresError::Failed {
                program: "psql",
                ..
            }
        ),
        "{refused}"
    );

    server.restart().unwrap();
    assert_eq!(server.psql("SELECT count(*) FROM alerts").unwrap(), "2");
    assert!(
        server.log().contains("database system was interrupted"),
        "the restart recovered from the log: {}",
        server.log()
    );

    let folder = server.folder().to_path_buf();
    drop(server);
    assert!(!folder.exists(), "the folder is removed with the server");
}
