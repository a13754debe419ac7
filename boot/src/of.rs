//! The Open Firmware client interface (IEEE 1275, with the PAPR conventions
//! that SLOF and QEMU's VOF follow).
//!
//! A call passes one array of 32-bit big-endian cells: the address of the
//! service name, the number of arguments, the number of results, the arguments,
//! then room for the results. Firmware runs big-endian and 32-bit, so every
//! address handed to it (the array, names, buffers) must lie below 4 GiB; the
//! kernel calls it in real mode from a stack in its image, which is.

use crate::tree::{DeviceTree, Node};

/// Calls big-endian firmware at `entry` with `r3 = arg` and returns its `r3`.
/// Provided by the architecture (it switches endianness around the call).
pub type FirmwareCaller = unsafe extern "C" fn(entry: u64, arg: u64, arg2: u64) -> u64;

/// Firmware's "no such node / property / failure" result.
const OF_FAILURE: u32 = u32::MAX;
const MAX_CELLS: usize = 16;
const NAME_MAX: usize = 128;

pub struct ClientInterface {
    entry: u64,
    caller: FirmwareCaller,
}

/// An instance handle (an opened device).
pub type Instance = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFailed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasError {
    NoRoot,
    /// The firmware has no such method.
    Unsupported,
    /// The method ran and said no (QEMU: -9005 other CPUs running, -4 bad vector, -1 no PVR match).
    Refused {
        catch: u32,
        status: i32,
    },
}

impl ClientInterface {
    /// # Safety
    /// `entry` must be the client-interface entry the firmware passed at boot,
    /// the firmware must not have been quiesced, and `caller` must implement
    /// the firmware calling convention. Every address passed to the firmware
    /// must be below 4 GiB and identity-mapped (real mode).
    pub unsafe fn new(entry: u64, caller: FirmwareCaller) -> Self {
        ClientInterface { entry, caller }
    }

    /// Calls `service` with `args` and fills `rets`.
    fn call(&self, service: &[u8], args: &[u32], rets: &mut [u32]) -> Result<(), CallFailed> {
        let mut name = [0u8; 32];
        name[..service.len()].copy_from_slice(service);
        let mut block = [0u32; 3 + MAX_CELLS];
        assert!(args.len() + rets.len() <= MAX_CELLS);
        block[0] = to_cell(name.as_ptr() as usize).to_be();
        block[1] = (args.len() as u32).to_be();
        block[2] = (rets.len() as u32).to_be();
        for (slot, arg) in block[3..].iter_mut().zip(args) {
            *slot = arg.to_be();
        }
        // SAFETY: `block` and `name` live on this stack below 4 GiB (checked by
        // to_cell) for the duration of the call; the constructor's contract
        // makes entry/caller valid.
        let status = unsafe { (self.caller)(self.entry, block.as_mut_ptr() as u64, 0) } as u32;
        if status == OF_FAILURE {
            return Err(CallFailed);
        }
        for (ret, slot) in rets.iter_mut().zip(&block[3 + args.len()..]) {
            *ret = u32::from_be(*slot);
        }
        Ok(())
    }

    fn call1(&self, service: &[u8], args: &[u32]) -> Result<u32, CallFailed> {
        let mut ret = [0u32; 1];
        self.call(service, args, &mut ret)?;
        Ok(ret[0])
    }

    pub fn finddevice(&self, path: &str) -> Option<Node> {
        let name = NulString::new(path)?;
        match self.call1(b"finddevice", &[name.cell()]) {
            Ok(OF_FAILURE) | Ok(0) | Err(_) => None,
            Ok(node) => Some(node),
        }
    }

    pub fn getprop(&self, node: Node, name: &str, buf: &mut [u8]) -> Option<usize> {
        let name = NulString::new(name)?;
        let len = self.call1(b"getproplen", &[node, name.cell()]).ok()?;
        if len == OF_FAILURE {
            return None;
        }
        if !buf.is_empty() {
            let want = buf.len().min(len as usize) as u32;
            let got = self.call1(b"getprop", &[node, name.cell(), to_cell(buf.as_mut_ptr() as usize), want]).ok()?;
            if got == OF_FAILURE {
                return None;
            }
        }
        Some(len as usize)
    }

    pub fn open(&self, path: &str) -> Option<Instance> {
        let name = NulString::new(path)?;
        match self.call1(b"open", &[name.cell()]) {
            Ok(0) | Err(_) => None,
            Ok(ihandle) => Some(ihandle),
        }
    }

    pub fn instance_to_package(&self, instance: Instance) -> Option<Node> {
        match self.call1(b"instance-to-package", &[instance]) {
            Ok(OF_FAILURE) | Err(_) => None,
            Ok(node) => Some(node),
        }
    }

    /// Claims `size` bytes aligned to `align` wherever the firmware has room
    /// (IEEE 1275 `claim` with a non-zero alignment picks the address).
    pub fn claim(&self, size: u32, align: u32) -> Option<u32> {
        match self.call1(b"claim", &[0, size, align]) {
            Ok(OF_FAILURE) | Err(_) => None,
            Ok(base) => Some(base),
        }
    }

    /// Instantiates RTAS at `base` (which the caller claimed); returns its entry.
    pub fn instantiate_rtas(&self, base: u32) -> Option<u32> {
        let rtas = self.open("/rtas")?;
        let method = NulString::new("instantiate-rtas")?;
        let mut rets = [0u32; 2]; // catch-result, entry
        self.call(b"call-method", &[method.cell(), rtas, base], &mut rets).ok()?;
        (rets[0] == 0 && rets[1] != 0).then_some(rets[1])
    }

    /// `ibm,client-architecture-support` on the root instance with `vector`
    /// (which must stay put, below 4 GiB, during the call). Both the
    /// catch-result and the method's own status must be 0.
    pub fn client_architecture_support(&self, vector: &[u8]) -> Result<(), CasError> {
        let root = self.open("/").ok_or(CasError::NoRoot)?;
        let method = NulString::new("ibm,client-architecture-support").ok_or(CasError::NoRoot)?;
        let mut rets = [0u32; 2];
        let result = self.call(b"call-method", &[method.cell(), root, to_cell(vector.as_ptr() as usize)], &mut rets);
        let _ = self.call(b"close", &[root], &mut []);
        result.map_err(|_| CasError::Unsupported)?;
        match rets {
            [0, 0] => Ok(()),
            [catch, status] => Err(CasError::Refused { catch, status: status as i32 }),
        }
    }

    /// Tells the firmware that the client is done with devices (SLOF stops DMA).
    pub fn quiesce(&self) -> Result<(), CallFailed> {
        self.call(b"quiesce", &[], &mut [])
    }

    /// Writes to the firmware's stdout (used only before the hvc console is known).
    pub fn write(&self, instance: Instance, text: &[u8]) {
        let _ = self.call1(b"write", &[instance, to_cell(text.as_ptr() as usize), text.len() as u32]);
    }
}

impl DeviceTree for ClientInterface {
    fn find(&self, path: &str) -> Option<Node> {
        self.finddevice(path)
    }

    fn child(&self, node: Node) -> Option<Node> {
        match self.call1(b"child", &[node]) {
            Ok(0) | Ok(OF_FAILURE) | Err(_) => None,
            Ok(child) => Some(child),
        }
    }

    fn peer(&self, node: Node) -> Option<Node> {
        match self.call1(b"peer", &[node]) {
            Ok(0) | Ok(OF_FAILURE) | Err(_) => None,
            Ok(peer) => Some(peer),
        }
    }

    fn property(&self, node: Node, name: &str, buf: &mut [u8]) -> Option<usize> {
        self.getprop(node, name, buf)
    }

    fn path(&self, node: Node, buf: &mut [u8]) -> Option<usize> {
        let len = self.call1(b"package-to-path", &[node, to_cell(buf.as_mut_ptr() as usize), buf.len() as u32]).ok()?;
        if len == OF_FAILURE {
            return None;
        }
        Some((len as usize).min(buf.len()))
    }
}

/// Bits of an effective address above the real address: POWER real mode
/// ignores them, and the kernel runs with them set (its kernel quadrant).
const QUADRANT_BITS: usize = 0xf000_0000_0000_0000;

/// An address as a firmware cell: the real address, which must be below 4 GiB
/// because the firmware is 32-bit (not something to truncate silently).
pub fn to_cell(address: usize) -> u32 {
    u32::try_from(address & !QUADRANT_BITS).expect("address passed to firmware must be below 4 GiB")
}

/// A NUL-terminated copy of a name for the firmware.
struct NulString {
    bytes: [u8; NAME_MAX],
}

impl NulString {
    fn new(text: &str) -> Option<Self> {
        if text.len() >= NAME_MAX || text.as_bytes().contains(&0) {
            return None;
        }
        let mut bytes = [0u8; NAME_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(NulString { bytes })
    }

    fn cell(&self) -> u32 {
        to_cell(self.bytes.as_ptr() as usize)
    }
}
