// init.js — starts Swagger UI (swagger-ui-bundle.js, loaded before) on this
// server's /openapi.json. A file of its own: the page's CSP allows no inline
// script.
"use strict";
window.addEventListener("load", function () {
    window.ui = SwaggerUIBundle({
        url: "/openapi.json",
        dom_id: "#swagger-ui",
        deepLinking: true,
        // No badge from an online validator: the page fetches from this server only.
        validatorUrl: null,
        tryItOutEnabled: false,
    });
});
