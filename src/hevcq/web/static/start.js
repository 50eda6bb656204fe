// Starts the page's part of the dashboard, named by the body's data-page attribute
// (a file, not inline: the Content-Security-Policy forbids inline script).
"use strict";
hevcq[document.body.dataset.page]();
