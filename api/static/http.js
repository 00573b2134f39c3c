// Talking to the API: the key from the page's field, JSON errors turned into messages.

const keyInput = document.getElementById("api-key");

export function apiKey() {
  return keyInput.value.trim();
}

// A WebSocket or an EventSource cannot send headers: the key goes as ?access_token=.
export function withKey(url) {
  const key = apiKey();
  if (!key) return url;
  return `${url}${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(key)}`;
}

export async function request(url, options = {}) {
  const key = apiKey();
  const headers = key ? { ...options.headers, Authorization: `Bearer ${key}` } : options.headers;
  const response = await fetch(url, { ...options, headers });
  const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
  const body = isJson ? await response.json() : await response.text();
  if (!response.ok) {
    const error = isJson && body.error ? body.error : { message: `HTTP ${response.status}` };
    throw new Error(error.message);
  }
  return body;
}

export function say(text, isError = false) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.classList.toggle("error", isError);
}

export function showVersion(version) {
  if (version) document.getElementById("model-version").textContent = version;
}
