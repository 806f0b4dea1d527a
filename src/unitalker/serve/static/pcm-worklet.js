// AudioWorklet: microphone float samples at the context rate -> 16 kHz PCM16 chunks.
// Downsampling averages the input samples that fall into each output sample (a box
// low-pass), enough for speech; chunks of `chunk` output samples are posted to the page.
class Pcm16Writer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.ratio = sampleRate / (o.targetRate || 16000);
    this.chunk = o.chunk || 320;  // 20 ms
    this.out = new Int16Array(this.chunk);
    this.n = 0;
    this.acc = 0; this.cnt = 0; this.pos = 0;
  }
  process(inputs) {
    const input = inputs[0];
    if (!input || !input.length) return true;
    const ch = input[0];
    for (let i = 0; i < ch.length; i++) {
      let s = ch[i];
      for (let c = 1; c < input.length; c++) s += input[c][i];
      this.acc += s / input.length; this.cnt++; this.pos += 1;
      if (this.pos >= this.ratio) {
        this.pos -= this.ratio;
        const v = Math.max(-1, Math.min(1, this.acc / this.cnt));
        this.out[this.n++] = v < 0 ? v * 32768 : v * 32767;
        this.acc = 0; this.cnt = 0;
        if (this.n === this.chunk) {
          this.port.postMessage(this.out.buffer.slice(0));
          this.n = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("pcm16-writer", Pcm16Writer);
