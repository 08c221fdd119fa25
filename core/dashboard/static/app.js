// The dashboard's only script: "select all" for the message table, and the
// buttons that act on the whole filtered set instead of the selection.
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("pick-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="ref"]').forEach(function (c) { c.checked = all.checked; });
    });
  }
  var scope = document.getElementById("scope");
  document.querySelectorAll("button[data-scope]").forEach(function (b) {
    b.addEventListener("click", function () { if (scope) { scope.value = b.dataset.scope; } });
  });
  document.querySelectorAll("button[name=op]:not([data-scope])").forEach(function (b) {
    b.addEventListener("click", function () { if (scope) { scope.value = "selected"; } });
  });
});
