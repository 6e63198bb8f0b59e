// Sortable tables of the smoothbench site: a click (or Enter / Space) on a header of a table.sortable orders its
// body rows by that column, ascending first, then descending. Each cell carries its raw value in data-sort (the
// displayed text holds intervals and thousands separators); a header's data-type says whether to compare numbers
// or text. Missing values (data-sort="") stay last in both directions. No library: the site opens from file://.
"use strict";

(function () {
  function key(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) raw = cell.textContent.trim();
    if (raw === "") return null;
    return numeric ? Number(raw) : raw.toLowerCase();
  }

  function sortBy(table, th) {
    var headers = Array.prototype.slice.call(th.parentNode.children);
    var column = headers.indexOf(th);
    var numeric = th.getAttribute("data-type") === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      return { row: row, i: i, k: key(row.cells[column], numeric) };
    });
    rows.sort(function (a, b) {
      if (a.k === null || b.k === null) return (a.k === null) - (b.k === null) || a.i - b.i;
      var order = a.k < b.k ? -1 : a.k > b.k ? 1 : 0;
      return (ascending ? order : -order) || a.i - b.i;  // ties keep their order
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    headers.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function init() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.tHead.querySelectorAll("th").forEach(function (th) {
        th.tabIndex = 0;
        th.title = "sort by this column";
        th.addEventListener("click", function () { sortBy(table, th); });
        th.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            sortBy(table, th);
          }
        });
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
