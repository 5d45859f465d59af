// The daemon's API from the browser: the bearer token (this tab only), JSON calls, and the
// event stream read with fetch (EventSource cannot send an Authorization header).

const KEY = "ha-token";

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  forget: () => sessionStorage.removeItem(KEY),
};

function headers(extra = {}) {
  return { Authorization: `Bearer ${token.get()}`, "X-HA-Actor": "dashboard", ...extra };
}

export async function api(method, path, body) {
  const init = { method, headers: headers({ "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const answer = await fetch(path, init);
  const type = answer.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await answer.json() : await answer.text();
  if (!answer.ok) throw new ApiError(answer.status, data.error || String(data));
  return data;
}

// Follow the journal from `after`: onEvent(event) for each event, onState("live" | "reconnecting")
// when the connection changes. Reconnects with Last-Event-ID, so nothing is missed or repeated.
export function follow(after, onEvent, onState) {
  let last = after;
  let stopped = false;
  const controller = { abort: null };

  async function once() {
    const abort = new AbortController();
    controller.abort = () => abort.abort();
    const answer = await fetch("/v1/events/stream", {
      headers: headers({ Accept: "text/event-stream", "Last-Event-ID": String(last) }),
      signal: abort.signal,
    });
    if (!answer.ok) throw new ApiError(answer.status, "the event stream refused");
    onState("live");
    const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""));
        if (data.length) {
          const event = JSON.parse(data.join("\n"));
          last = event.id;
          onEvent(event);
        }
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) {
          onState("unauthorized");
          return;
        }
      }
      if (stopped) return;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();

  return () => {
    stopped = true;
    if (controller.abort) controller.abort();
  };
}
