// Where require.js finds the widget modules: beside this file, in the site itself.
// - anywidget (the drawing pad's canvas), which html-manager does not bundle and would otherwise fetch from its "CDN":
//   this site points that at a folder of its own that does not exist, so that nothing a page loads leaves the site;
// - @jupyter-widgets/*, bundled in html-manager/embed-amd.js: their address only tells webpack where their fonts are.
(function () {
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  window.requirejs.config({ paths: { anywidget: here + "anywidget/index", "@jupyter-widgets": here + "html-manager" } });
})();
