use actix_web::{web, HttpResponse};
use diesel::RunQueryDsl;

use crate::startup::AppState;

/// `GET /healthz`: 200 when the database answers a query on the users table, 503 when it
/// does not. Reading a real table (not just `SELECT 1`) proves the file and schema are there.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let result = crate::db::run(&state.pool, |conn| {
        diesel::sql_query("SELECT id FROM users WHERE id = 0").execute(conn)?;
        Ok(())
    })
    .await;
    match result {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "health check: database unavailable"
            );
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "reason": "database"}))
        }
    }
}
