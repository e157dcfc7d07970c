// The API docs page: Swagger UI on the portal's own OpenAPI schema (vendored, no CDN).
(function () {
  var el = document.getElementById("swagger-ui");
  if (!el || !window.SwaggerUIBundle) return;
  window.SwaggerUIBundle({
    url: el.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    requestInterceptor: function (req) {
      var csrf = document.querySelector("meta[name=csrf-token]");
      if (csrf) req.headers["X-CSRFToken"] = csrf.content;
      return req;
    },
  });
})();
