use actix_web::{web, HttpResponse};
use diesel::RunQueryDsl;

use crate::startup::AppState;

/// `GET /healthz`: 200 when the database answers a query, 503 when it does not.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let result = crate::db::run(&state.pool, |conn| {
        diesel::sql_query("SELECT 1").execute(conn)?;
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
