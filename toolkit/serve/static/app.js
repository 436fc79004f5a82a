"use strict";
// The draw-a-digit page: strokes on a canvas are posted as a PNG to /api/predict (the server does
// the MNIST preprocessing, as `digitkit predict` does), at most one request in flight while drawing.
(() => {
  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const seen = $("seen").getContext("2d");
  let token = sessionStorage.getItem("digitkit-token") || "";
  let drawing = false, drawn = false, inFlight = false, again = false, last = null, maxBody = 0;

  function clearPad() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    drawn = false;
    $("digit").textContent = "–";
    $("confidence").textContent = "draw or upload a digit";
    $("timing").textContent = "";
    $("status").textContent = "";
    showBars(null);
    seen.fillStyle = "#000";
    seen.fillRect(0, 0, 28, 28);
  }

  function showBars(probabilities) {
    const bars = $("bars");
    if (!bars.children.length) {
      for (let d = 0; d < 10; d++) {
        const li = document.createElement("li");
        li.innerHTML = `<b>${d}</b><div class="bar"><span></span></div><span class="p">0%</span>`;
        bars.appendChild(li);
      }
    }
    const top = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
    [...bars.children].forEach((li, d) => {
      const p = probabilities ? probabilities[d] : 0;
      li.querySelector(".bar span").style.width = `${(p * 100).toFixed(1)}%`;
      li.querySelector(".p").textContent = `${(p * 100).toFixed(1)}%`;
      li.classList.toggle("top", d === top);
    });
  }

  function showSeen(rows) {
    const image = seen.createImageData(28, 28);
    rows.flat().forEach((v, i) => {
      image.data.set([v, v, v, 255], i * 4);
    });
    seen.putImageData(image, 0, 0);
  }

  function headers(type) {
    const h = { "Content-Type": type };
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  async function predict(body, type) {
    const response = await fetch("/api/predict?image=1", { method: "POST", body, headers: headers(type) });
    const answer = await response.json();
    if (response.status === 401) {
      $("token-row").hidden = false;
      $("status").textContent = "This server needs a token.";
      return;
    }
    if (!response.ok) {
      $("status").textContent = `${answer.error}. ${answer.fix || ""}`;
      return;
    }
    $("status").textContent = "";
    $("digit").textContent = answer.digit;
    $("confidence").textContent = `confidence ${(answer.confidence * 100).toFixed(1)}%`;
    showBars(answer.probabilities);
    showSeen(answer.image);
    const t = answer.timing_us;
    $("timing").textContent = `decode ${t.decode_us} µs · preprocess ${t.preprocess_us} µs · inference ${t.inference_us} µs · server ${t.total_us} µs`;
  }

  function predictDrawing() {
    if (!drawn) return;
    if (inFlight) { again = true; return; }
    inFlight = true;
    pad.toBlob(async (blob) => {
      try {
        await predict(blob, "image/png");
      } catch (err) {
        $("status").textContent = `The server did not answer (${err.message}).`;
      } finally {
        inFlight = false;
        if (again) { again = false; predictDrawing(); }
      }
    }, "image/png");
  }

  function point(event) {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
  }

  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    last = point(event);
    pad.setPointerCapture(event.pointerId);
    ctx.beginPath();
    ctx.arc(last[0], last[1], 9, 0, 2 * Math.PI);
    ctx.fillStyle = "#111";
    ctx.fill();
    drawn = true;
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const p = point(event);
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 18;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    last = p;
    predictDrawing();
  });
  const stop = () => { if (drawing) { drawing = false; predictDrawing(); } };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);

  // A photo larger than the server accepts (a 48-megapixel phone camera) is shrunk here first, to
  // 2048 pixels on its longer side, upright: the digit needs 20 pixels, the network far fewer bytes.
  async function shrink(file) {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = Math.min(1, 2048 / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  }

  async function upload(input) {
    const file = input.files[0];
    if (!file) return;
    try {
      if (maxBody && file.size > maxBody) {
        $("status").textContent = "Shrinking the photo…";
        await predict(await shrink(file), "image/jpeg");
      } else {
        await predict(file, file.type || "application/octet-stream");
      }
    } catch (err) {
      $("status").textContent = `The server did not answer (${err.message}).`;
    }
    input.value = "";
  }
  $("file").addEventListener("change", () => upload($("file")));
  $("camera").addEventListener("change", () => upload($("camera")));
  $("clear").addEventListener("click", clearPad);
  $("token-save").addEventListener("click", () => {
    token = $("token").value.trim();
    sessionStorage.setItem("digitkit-token", token);
    $("token-row").hidden = true;
    describe();
    predictDrawing();
  });

  async function describe() {
    try {
      const response = await fetch("/api/info", { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (response.status === 401) { $("token-row").hidden = false; $("model").textContent = "This server needs a token."; return; }
      const info = await response.json();
      maxBody = info.limits.max_body_bytes;
      const accuracy = info.reference ? ` · reference accuracy ${(info.reference.test_accuracy * 100).toFixed(2)}%` : "";
      $("model").textContent = `${info.artifact} · ${info.mode} · ${info.backend}${accuracy}`;
    } catch (err) {
      $("model").textContent = `The server did not answer (${err.message}).`;
    }
  }

  clearPad();
  describe();
})();
