//! Unix sockets between the daemon and the launcher: the socket pair, its
//! buffers, and datagrams that carry descriptors (`SCM_RIGHTS`).
#![allow(unsafe_code)]

use super::{check_int, owned, Errno};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Most descriptors one message carries: the kernel's `SCM_MAX_FD`. A
/// launch plan sends stdout, stderr and up to `plan::MAX_PASSED_FDS` more.
pub const MAX_FDS_PER_MSG: usize = 253;
/// Room for one `SCM_RIGHTS` control message of [`MAX_FDS_PER_MSG`]
/// descriptors (`CMSG_SPACE(253 * 4)` = 1,032 bytes on 64-bit), in u64s
/// for alignment.
const CMSG_WORDS: usize = (16 + MAX_FDS_PER_MSG * 4).div_ceil(8) + 1;

/// A connected `AF_UNIX` `SOCK_SEQPACKET` pair, close-on-exec.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check_int(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// A connected `AF_UNIX` `SOCK_STREAM` pair, close-on-exec (a channel
/// between two services).
pub fn stream_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check_int(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// Forces the socket's send and receive buffers (root only), so one
/// launch plan with a large environment fits in one datagram.
pub fn force_socket_buffers(fd: &OwnedFd, bytes: i32) -> Result<(), Errno> {
    set_int_options(fd, &[libc::SO_SNDBUFFORCE, libc::SO_RCVBUFFORCE], bytes)
}

/// `SO_SNDBUF`/`SO_RCVBUF` (capped by the system maximum).
pub fn set_socket_buffers(fd: &OwnedFd, bytes: i32) -> Result<(), Errno> {
    set_int_options(fd, &[libc::SO_SNDBUF, libc::SO_RCVBUF], bytes)
}

fn set_int_options(fd: &OwnedFd, opts: &[libc::c_int], value: i32) -> Result<(), Errno> {
    for &opt in opts {
        // SAFETY: a valid int option value of the right length.
        check_int(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

pub fn set_nonblocking(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: fcntl with integer arguments on a descriptor we own.
    let flags = check_int(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    check_int(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Sends one datagram carrying `data` and, as `SCM_RIGHTS`, `fds`.
pub fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    if fds.len() > MAX_FDS_PER_MSG {
        return Err(Errno(libc::EINVAL));
    }
    let iov = [IoSlice::new(data)];
    // Space for the largest control message we send, suitably aligned.
    let mut cmsg_buf = [0u64; CMSG_WORDS];
    // SAFETY: msghdr is plain data; every pointer set below points into
    // locals that outlive the sendmsg call, and CMSG_* compute offsets
    // within `cmsg_buf`, whose size we pass.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let len = std::mem::size_of_val(fds) as u32;
            if libc::CMSG_SPACE(len) as usize > std::mem::size_of_val(&cmsg_buf) {
                return Err(Errno(libc::EINVAL));
            }
            msg.msg_control = cmsg_buf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(len) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(len) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        }
        loop {
            let r = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
            if r >= 0 {
                return Ok(());
            }
            let e = Errno::last();
            if e.0 != libc::EINTR {
                return Err(e);
            }
        }
    }
}

/// Receives one datagram into `buf`; returns its length (0 = peer closed)
/// and the descriptors it carried (close-on-exec).
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), Errno> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg_buf = [0u64; CMSG_WORDS];
    // SAFETY: as in `send_with_fds`; the kernel writes at most
    // `msg_controllen` bytes of control data into `cmsg_buf`, and we only
    // read SCM_RIGHTS payloads within the lengths it reports.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr().cast();
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg_buf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg_buf);
        let n = loop {
            let r = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if r >= 0 {
                break r as usize;
            }
            let e = Errno::last();
            if e.0 != libc::EINTR {
                return Err(e);
            }
        };
        let mut fds = Vec::new();
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data_len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                let count = data_len / std::mem::size_of::<RawFd>();
                let p = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(owned(std::ptr::read_unaligned(p.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(Errno(libc::EMSGSIZE));
        }
        Ok((n, fds))
    }
}

/// How many connections wait in a listening TCP socket's accept queue
/// (`tcp_info.tcpi_unacked` of a socket in LISTEN state).
pub fn accept_backlog(fd: RawFd) -> Result<u32, Errno> {
    // SAFETY: tcp_info is plain data; zeroed is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` has room for `len` bytes; the kernel writes at most that.
    check_int(unsafe {
        libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&mut info as *mut libc::tcp_info).cast(), &mut len)
    })?;
    Ok(info.tcpi_unacked)
}

/// The address a socket is bound to.
pub fn local_addr(fd: RawFd) -> Result<std::net::SocketAddr, Errno> {
    // SAFETY: a borrowed descriptor we do not close: ManuallyDrop keeps the
    // std type from closing it.
    let s = std::mem::ManuallyDrop::new(unsafe { <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    s.local_addr().map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EINVAL)))
}

/// A `sockaddr_un` for `path` (at most 107 bytes), and its length.
fn unix_addr(path: &std::path::Path) -> Result<(libc::sockaddr_un, libc::socklen_t), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    Ok((addr, len))
}

/// A listening `SOCK_SEQPACKET` Unix socket bound at `path` (which must
/// not exist), close-on-exec; its mode follows the umask.
pub fn seqpacket_listen(path: &std::path::Path, backlog: i32) -> Result<OwnedFd, Errno> {
    let (addr, len) = unix_addr(path)?;
    // SAFETY: plain integer arguments; a new descriptor is returned.
    let fd = owned(check_int(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?);
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    check_int(unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) })?;
    // SAFETY: integer arguments on a descriptor we own.
    check_int(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

/// A `SOCK_SEQPACKET` connection to the Unix socket at `path`, close-on-exec.
pub fn seqpacket_connect(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    let (addr, len) = unix_addr(path)?;
    // SAFETY: plain integer arguments; a new descriptor is returned.
    let fd = owned(check_int(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?);
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    check_int(unsafe { libc::connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) })?;
    Ok(fd)
}

/// `accept4(fd, NULL, NULL, SOCK_CLOEXEC)`.
pub fn accept(fd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: no address is asked for; a new descriptor is returned.
    Ok(owned(check_int(unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) })?))
}

/// The uid and pid of the process at the other end of a Unix socket
/// (`SO_PEERCRED`, as it was when it connected).
pub fn peer_cred(fd: RawFd) -> Result<(u32, i32), Errno> {
    // SAFETY: ucred is plain data; zeroed is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` has room for `len` bytes; the kernel writes at most that.
    check_int(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut cred as *mut libc::ucred).cast(), &mut len)
    })?;
    Ok((cred.uid, cred.pid))
}

/// Whether `fd` is a socket in the listening state (`SO_ACCEPTCONN`).
pub fn is_listening(fd: RawFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` has room for `len` bytes; any integer fd is a valid
    // argument (ENOTSOCK or EBADF otherwise).
    let r = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&mut v as *mut libc::c_int).cast(), &mut len)
    };
    r == 0 && v != 0
}

/// Clears close-on-exec on `fd`, so it survives an `execve` (the daemon's
/// re-exec passes its listening sockets this way).
pub fn clear_cloexec(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: fcntl with integer arguments.
    let flags = check_int(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    check_int(unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) })?;
    Ok(())
}

/// `send(fd, buf, MSG_NOSIGNAL)`: a write to a socket whose peer is gone
/// fails with `EPIPE` instead of raising `SIGPIPE` (the CLI keeps SIGPIPE's
/// default action for its stdout, so `solo ls | head` just stops).
pub fn send_nosignal(fd: RawFd, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes for the whole call.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
