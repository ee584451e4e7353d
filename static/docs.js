// Starts the vendored Swagger UI on /docs; a file, not an inline script, like the rest of the UI.
"use strict";

(() => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: false, // its links inside the operation buttons nest interactive elements
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
