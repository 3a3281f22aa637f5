// The ES module entry of the polysocket package. polysocket.js is a plain
// script (ES3, for every browser) that defines window.PolySocket; this
// file loads it for its effect and exports what it defined.
//
//   import PolySocket from 'polysocket';
//   PolySocket.install({router: 'https://ps.example.com', token: 'T'});
import './polysocket.js';

const PolySocket = typeof window !== 'undefined' ? window.PolySocket : undefined;

export { PolySocket };
export default PolySocket;
