//! Static files, compiled into the binary: no CDN, nothing to deploy beside it.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// The files served under `/static/`: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/favicon.svg"),
    ),
    (
        "avatar.svg",
        "image/svg+xml",
        include_bytes!("../../static/avatar.svg"),
    ),
];

/// `GET /static/{name}`. Only the names above exist, so no path can reach anything else.
pub async fn static_file(name: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, content_type, bytes)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*bytes),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}
