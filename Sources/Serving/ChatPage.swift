/// The page `GET /` serves: a self-contained chat (no external scripts, styles or fonts) that keeps
/// the conversation in the page and streams each answer from `/v1/chat/completions`.
enum ChatPage {
    static func html(model: String) -> String {
        let name = model.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        return page.replacingOccurrences(of: "{{MODEL}}", with: name)
    }

    private static let page = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>toolkit chat · {{MODEL}}</title>
        <style>
          :root { --fg: #1d2430; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb; --user: #eef2ff; --bot: #f9fafb; }
          * { box-sizing: border-box; }
          body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #fff;
                 display: flex; flex-direction: column; height: 100vh; }
          header { padding: 10px 16px; border-bottom: 1px solid var(--line); display: flex; gap: 12px; align-items: center; }
          header h1 { font-size: 16px; margin: 0; }
          header .model { color: var(--muted); font-family: ui-monospace, monospace; font-size: 13px; }
          header label { margin-left: auto; color: var(--muted); font-size: 13px; }
          header input { width: 4em; }
          #log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 10px; }
          .msg { max-width: 46em; padding: 8px 12px; border-radius: 8px; white-space: pre-wrap; word-wrap: break-word; }
          .user { align-self: flex-end; background: var(--user); }
          .assistant { align-self: flex-start; background: var(--bot); border: 1px solid var(--line); }
          .error { align-self: center; color: #b91c1c; font-size: 13px; }
          form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid var(--line); }
          textarea { flex: 1; resize: none; height: 3.2em; padding: 8px; font: inherit; border: 1px solid var(--line); border-radius: 6px; }
          button { padding: 0 16px; border: 0; border-radius: 6px; background: var(--accent); color: #fff; font: inherit; cursor: pointer; }
          button[disabled] { opacity: .5; cursor: default; }
          #reset { background: #fff; color: var(--fg); border: 1px solid var(--line); }
        </style>
        </head>
        <body>
        <header>
          <h1>toolkit chat</h1><span class="model">{{MODEL}}</span>
          <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
          <label>max tokens <input id="max" type="number" min="1" step="1" placeholder="auto"></label>
        </header>
        <div id="log" aria-live="polite"></div>
        <form id="form">
          <textarea id="input" placeholder="Send a message (Enter to send, Shift+Enter for a new line)" autofocus></textarea>
          <button id="send" type="submit">Send</button>
          <button id="reset" type="button">Reset</button>
        </form>
        <script>
        const log = document.getElementById("log"), input = document.getElementById("input");
        const send = document.getElementById("send");
        let messages = [];
        // The request: max_tokens only when set (else the server answers up to the rest of the context).
        function request() {
          const body = { messages, stream: true, temperature: Number(document.getElementById("temperature").value) };
          const max = document.getElementById("max").value;
          if (max) body.max_tokens = Number(max);
          return body;
        }
        function add(cls, text) {
          const div = document.createElement("div");
          div.className = "msg " + cls;
          div.textContent = text;
          log.appendChild(div);
          log.scrollTop = log.scrollHeight;
          return div;
        }
        document.getElementById("reset").onclick = () => { messages = []; log.textContent = ""; input.focus(); };
        input.addEventListener("keydown", e => {
          if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); document.getElementById("form").requestSubmit(); }
        });
        document.getElementById("form").addEventListener("submit", async e => {
          e.preventDefault();
          const text = input.value.trim();
          if (!text || send.disabled) return;
          input.value = "";
          messages.push({ role: "user", content: text });
          add("user", text);
          const out = add("assistant", "");
          out.dataset.state = "streaming";
          send.disabled = true;
          let answer = "";
          try {
            const response = await fetch("/v1/chat/completions", {
              method: "POST", headers: { "Content-Type": "application/json" },
              body: JSON.stringify(request())
            });
            if (!response.ok) {
              const body = await response.json().catch(() => ({}));
              throw new Error(body.error ? body.error.message : response.statusText);
            }
            const reader = response.body.getReader(), decoder = new TextDecoder();
            let buffer = "";
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              buffer += decoder.decode(value, { stream: true });
              let cut;
              while ((cut = buffer.indexOf("\n\n")) >= 0) {
                const line = buffer.slice(0, cut).trim();
                buffer = buffer.slice(cut + 2);
                if (!line.startsWith("data:")) continue;
                const data = line.slice(5).trim();
                if (data === "[DONE]") continue;
                const chunk = JSON.parse(data);
                if (chunk.error) throw new Error(chunk.error.message);
                const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
                if (delta && delta.content) { answer += delta.content; out.textContent = answer; log.scrollTop = log.scrollHeight; }
              }
            }
            messages.push({ role: "assistant", content: answer });
          } catch (err) {
            messages.pop();
            add("error", "error: " + err.message);
          } finally {
            out.dataset.state = "done";
            send.disabled = false;
            input.focus();
          }
        });
        </script>
        </body>
        </html>
        """#
}
