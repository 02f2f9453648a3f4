//! The tower [`Service`](tower_service::Service) that wraps every request: it prepares the
//! request's session, runs the inner service, then saves and sets the cookie.

use crate::config::{is_app, AppSource, Config, CookieSecure, ReportedOnce};
use crate::session::{Handle, Shared};
use crate::{cookie, request};
use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use http::request::Parts;
use http::Request;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The service built by [`SessionLayer`](crate::SessionLayer) around an inner service.
/// Its responses carry an axum [`Body`], so a store failure can be answered with 503.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        SessionService { inner, config }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for SessionService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = req.into_parts();
        let shared = prepare(&self.config, &parts).map(Arc::new);
        parts.extensions.insert(Handle(shared.clone()));
        let req = Request::from_parts(parts, body);
        Box::pin(async move {
            let response = inner.call(req).await?.map(Body::new);
            Ok(match shared {
                Ok(shared) => shared.finish(response).await,
                Err(_) => response,
            })
        })
    }
}

/// The request's session before anyone uses it: no store call is made here. An app name
/// that cannot be derived from the request is returned as the error, for the extractor to
/// report on the routes that use sessions; the others are served as usual.
fn prepare(config: &Arc<Config>, parts: &Parts) -> Result<Shared, String> {
    let app = match &config.app {
        AppSource::Fixed(app) => app.clone(),
        AppSource::PerRequest(f) => {
            let app = f(parts);
            if !is_app(&app) {
                if ReportedOnce::first(&config.reported.invalid_app) {
                    tracing::error!(
                        app = %app,
                        "per_request_app computed an invalid session app name (it must match \
                         ^[A-Za-z0-9_-]{{3,20}}$): routes that take a Session answer 500 for \
                         such requests; reported once"
                    );
                }
                return Err(app);
            }
            app
        }
    };
    let cookie_name = config.cookie.name.clone().unwrap_or_else(|| app.clone());
    let bearer = config
        .bearer
        .then(|| cookie::from_bearer(&parts.headers))
        .flatten();
    let (token, from_cookie) = match bearer {
        Some(token) => (Some(token), false),
        None => {
            let token = cookie::from_cookie(&parts.headers, &cookie_name);
            let found = token.is_some();
            (token, found)
        }
    };
    let forwarded = config
        .proxies
        .read(config.proxy_header, &parts.headers, request::peer(parts));
    let secure = match config.cookie.secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => request::is_https(parts, &forwarded),
    };
    Ok(Shared::new(
        config.clone(),
        app,
        request::client_ip(parts, &forwarded),
        cookie_name,
        secure,
        token,
        from_cookie,
    ))
}
