// The live events tail: the page comes with the latest events already rendered and names the
// event to resume after (data-resume-after); an EventSource on the tenant's stream (the
// session cookie authenticates; same origin) starts there with ?lastEventId=, so nothing
// between the rendered list and the stream is lost, and an event already shown is skipped.
// The browser reconnects by itself with Last-Event-ID; when it gives up (the server was away
// too long) we reconnect with ?lastEventId= so nothing is lost. A new type filter loads the
// page again (its latest events are the server's to pick). Everything from the stream is
// rendered with textContent, never as HTML.
"use strict";

(function () {
  var MAX_ITEMS = 200;
  var tail, statusNode, emptyNode, source = null, lastId = null, retryDelay = 1000, retryTimer = null;

  function chosenTypes() {
    var boxes = document.querySelectorAll("#event-filter input[name=events]:checked");
    return Array.prototype.map.call(boxes, function (b) { return b.value; });
  }

  function setStatus(state, text) {
    statusNode.setAttribute("data-state", state);
    statusNode.textContent = text;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function summary(envelope) {
    var data = envelope.data || {};
    var parts = [];
    ["title", "message", "summary", "newStatus", "incidentId", "subscriptionId"].forEach(function (key) {
      if (typeof data[key] === "string" && parts.length < 2) { parts.push(data[key]); }
    });
    return parts.join(" · ");
  }

  function shown(id) {
    return Array.prototype.some.call(tail.children, function (node) {
      return node.getAttribute("data-event-id") === id;
    });
  }

  function show(envelope) {
    if (envelope.id && shown(envelope.id)) { return; }
    var item = element("li", "event");
    item.setAttribute("data-event-id", envelope.id || "");
    var head = element("div", "event-head");
    var time = element("time", "", envelope.timestamp || "");
    time.setAttribute("datetime", envelope.timestamp || "");
    head.appendChild(time);
    head.appendChild(element("code", "event-type", envelope.event || ""));
    if (envelope.test) { head.appendChild(element("span", "badge badge-test", "test")); }
    var link = element("a", "", "details");
    link.href = "/ui/events/" + encodeURIComponent(envelope.id || "") +
      "?at=" + encodeURIComponent(envelope.timestamp || "");
    head.appendChild(link);
    item.appendChild(head);
    item.appendChild(element("span", "event-summary", summary(envelope)));
    var more = element("details");
    more.appendChild(element("summary", "", "Envelope"));
    more.appendChild(element("pre", "json", JSON.stringify(envelope, null, 2)));
    item.appendChild(more);
    tail.insertBefore(item, tail.firstChild);
    while (tail.children.length > MAX_ITEMS) { tail.removeChild(tail.lastChild); }
    emptyNode.hidden = true;
  }

  function onEvent(message) {
    if (message.lastEventId) { lastId = message.lastEventId; }
    try { show(JSON.parse(message.data)); } catch (err) { /* not an envelope: skip it */ }
  }

  function onReset(message) {
    var reason = "";
    try { reason = JSON.parse(message.data).reason || ""; } catch (err) { reason = ""; }
    var note = element("li", "event reset", "Some events could not be replayed (" + reason + "); showing live events from here.");
    tail.insertBefore(note, tail.firstChild);
  }

  function connect() {
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    if (source) { source.close(); }
    var types = chosenTypes();
    var params = new URLSearchParams();
    if (types.length) { params.set("events", types.join(",")); }
    // A fresh EventSource does not know where the previous one stopped: tell the server.
    if (lastId) { params.set("lastEventId", lastId); }
    var query = params.toString();
    source = new EventSource(tail.getAttribute("data-stream-path") + (query ? "?" + query : ""));
    var listen = types.length ? types : tail.getAttribute("data-types").split(",");
    listen.forEach(function (type) { source.addEventListener(type, onEvent); });
    source.addEventListener("reset", onReset);
    source.onopen = function () { retryDelay = 1000; setStatus("live", "Live: connected to the stream."); };
    source.onerror = function () {
      if (source.readyState === EventSource.CONNECTING) {
        setStatus("reconnecting", "Connection lost: reconnecting…");
        return;
      }
      setStatus("closed", "Disconnected: trying again in " + Math.round(retryDelay / 1000) + " s…");
      retryTimer = setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    };
  }

  function filterChanged() {
    var types = chosenTypes();
    var url = "/ui/events" + (types.length ? "?events=" + encodeURIComponent(types.join(",")) : "");
    if (source) { source.close(); }
    window.location.assign(url);
  }

  document.addEventListener("DOMContentLoaded", function () {
    tail = document.getElementById("tail");
    statusNode = document.getElementById("stream-status");
    emptyNode = document.getElementById("tail-empty");
    if (!tail || !window.EventSource) { return; }
    lastId = tail.getAttribute("data-resume-after") || null;
    var form = document.getElementById("event-filter");
    form.addEventListener("change", filterChanged);
    form.addEventListener("submit", function (event) { event.preventDefault(); filterChanged(); });
    connect();
  });
})();
