#pragma once
// An asynchronous RESP2 server on standalone Asio: one I/O thread, any number of clients,
// pipelined requests answered in order. A command's handler gets a `reply` function it may
// call later from any thread (when the Raft node has an answer); the server never blocks on
// it. Commands not answered within `command_timeout` get an error reply, so a client never
// hangs. A client that disconnects mid-request leaves nothing behind: answers arriving for it
// later are dropped. Every limit holds against a hostile client: replies a client does not
// read pause its reading and, past `max_unread_bytes`, close it; past `max_clients`, new
// connections get an error and are closed; when accepting fails (out of file descriptors),
// the server retries after a pause instead of spinning.

#include <asio.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resp.hpp"

namespace craft::examples::resp {

class server {
public:
    /// Answers one command; call it exactly once (later calls are ignored).
    using reply_fn = std::function<void(std::string)>;
    using handler = std::function<void(std::vector<std::string>& args, reply_fn reply)>;
    /// True for commands that change state. A client's pipelined reads run concurrently; a
    /// write waits until everything before it is answered, and everything after a write waits
    /// for it, so each client's commands take effect in the order it sent them (as with
    /// Redis; a write retried while leadership moves cannot overtake a later one, and a write
    /// answered TIMEOUT holds the later ones back until its handler answers, since until
    /// then it may still take effect). Many clients' writes still share each Raft batch.
    /// Without it, every command may overlap.
    using classifier = std::function<bool(const std::vector<std::string>& args)>;

    struct options {
        std::string host = "127.0.0.1";
        std::uint16_t port = 6379;
        resp::limits limits;
        std::chrono::milliseconds command_timeout{5000};
        std::size_t max_pipeline = 4096;  ///< Unanswered commands per client before reading pauses.
        /// Replies held for a client (on their way, waiting for earlier ones, or unsent)
        /// past which its reading pauses...
        std::size_t max_output_bytes = 16 << 20;
        /// ...and past which it is closed: a client that sends commands and never reads the
        /// replies (commands already running keep answering after reading pauses).
        std::size_t max_unread_bytes = 256u << 20;
        /// Open connections at most (Redis's default `maxclients`); a client beyond it is told
        /// so and closed.
        std::size_t max_clients = 10000;
        /// Where the server reports trouble that has no client to tell (accepting failed).
        std::function<void(const std::string&)> log = [](const std::string& line) {
            std::cerr << line << std::endl;
        };
    };

    server(asio::io_context& io, options o, handler h, classifier is_write = {})
        : io_(io),
          opt_(std::move(o)),
          handler_(std::move(h)),
          is_write_(std::move(is_write)),
          acceptor_(io),
          sweep_(io),
          accept_retry_(io) {}

    /// Binds and starts accepting; throws std::system_error naming the address on failure.
    void start() {
        asio::ip::tcp::endpoint ep(asio::ip::make_address(opt_.host), opt_.port);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
        std::error_code ec;
        acceptor_.bind(ep, ec);
        if (ec)
            throw std::system_error(
                ec, "cannot listen for clients on " + opt_.host + ":" + std::to_string(opt_.port));
        acceptor_.listen();
        accept();
        sweep();
    }
    /// Closes the listener and every client (call on the I/O thread, or after it stopped).
    void stop() {
        std::error_code ec;
        acceptor_.close(ec);
        sweep_.cancel();
        accept_retry_.cancel();
        for (auto& c : conns_) c->close();
        conns_.clear();
    }
    [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

private:
    using clock = std::chrono::steady_clock;

    struct slot {
        std::string reply;
        bool ready = false;
        clock::time_point deadline;
    };

    class connection : public std::enable_shared_from_this<connection> {
    public:
        connection(server& s, asio::ip::tcp::socket sock)
            : s_(s), sock_(std::move(sock)), parser_(s.opt_.limits) {}

        void start() { pump(); }
        [[nodiscard]] bool closed() const { return closed_; }
        void close() {
            if (!closed_) --s_.open_;
            closed_ = true;
            std::error_code ec;
            sock_.close(ec);
        }

        /// Counts `bytes` of a reply as held for this client (any thread); false, counting
        /// nothing, when that would pass `limit`: the reply is dropped and the client closed.
        bool hold(std::size_t bytes, std::size_t limit) {
            if (reply_bytes_.fetch_add(bytes) + bytes <= limit) return true;
            reply_bytes_ -= bytes;
            overflow_ = true;
            return false;
        }

        /// Fills slot `seq` (on the I/O thread), writes whatever is ready in order, and runs
        /// what was held back. The answer to a command that timed out still counts: until it
        /// comes, that command may yet take effect, so a write after it keeps waiting.
        void answer(std::uint64_t seq, std::string reply) {
            if (closed_) return;
            if (overflow_) return close();     // replies left unread: max_unread_bytes
            if (in_flight_ > 0) --in_flight_;  // (a handler answering twice through copies)
            if (seq < first_seq_ || slots_[static_cast<std::size_t>(seq - first_seq_)].ready) {
                reply_bytes_ -= reply.size();  // timed out: the client was told already
                return pump();
            }
            auto& sl = slots_[static_cast<std::size_t>(seq - first_seq_)];
            sl.reply = std::move(reply);
            sl.ready = true;
            flush();
            pump();
        }

        /// Answers what is overdue with an error.
        void expire(clock::time_point now) {
            bool any = false;
            for (auto& sl : slots_)
                if (!sl.ready && sl.deadline <= now) {
                    sl.reply = error(
                        "TIMEOUT no answer from the cluster in time (the command "
                        "may still take effect)");
                    reply_bytes_ += sl.reply.size();
                    sl.ready = true;  // still in flight until its handler answers
                    any = true;
                }
            // A command waiting its turn behind a write whose outcome is still unknown (that
            // write timed out, and its handler has not answered) is answered without being
            // run, so the client never hangs; it can safely be sent again.
            if (held_ && held_deadline_ <= now) {
                push_answered(
                    error("TIMEOUT not run: the outcome of an earlier write is still unknown "
                          "(send it again)"));
                held_.reset();
                held_write_ = false;
                any = true;
            }
            if (any) {
                flush();
                pump();
            }
        }

    private:
        /// Parses and runs what it can; reads more when nothing is held back.
        void pump() {
            while (!closed_ && !close_after_flush_) {
                if (!held_) {
                    if (backlogged()) break;  // back-pressure: the client must read first
                    const auto r = parser_.next(args_);
                    if (r == parser::result::need_more) break;
                    if (r == parser::result::error) {
                        // As Redis does: answer, then close (the stream cannot be resynced).
                        push_answered(error("ERR " + parser_.error()));
                        close_after_flush_ = true;
                        flush();
                        return;
                    }
                    held_ = std::move(args_);
                    held_write_ = s_.is_write_ && s_.is_write_(*held_);
                    held_deadline_ = clock::now() + s_.opt_.command_timeout;
                }
                if (in_flight_ > 0 && (held_write_ || write_in_flight_)) break;  // its turn later
                write_in_flight_ = held_write_;
                auto args = std::move(*held_);
                held_.reset();
                run(args);
            }
            if (closed_ || reading_ || held_ || close_after_flush_) return;
            if (eof_) {
                flush();  // closes once everything asked before the end is answered
                return;
            }
            if (!backlogged()) read();
        }

        [[nodiscard]] bool backlogged() const {
            return slots_.size() >= s_.opt_.max_pipeline || reply_bytes_ > s_.opt_.max_output_bytes;
        }

        void run(std::vector<std::string>& args) {
            const auto seq = push();
            ++in_flight_;
            std::weak_ptr<connection> weak = shared_from_this();
            bool once = false;
            s_.handler_(args, [weak, answers = s_.answers_, seq, once,
                               limit = s_.opt_.max_unread_bytes](std::string reply) mutable {
                if (once) return;
                once = true;
                auto c = weak.lock();
                if (!c) return;                                 // gone: nobody to answer
                if (!c->hold(reply.size(), limit)) reply = {};  // closed when it arrives
                answers->push(std::move(weak), seq, std::move(reply));
            });
        }

        void read() {
            reading_ = true;
            sock_.async_read_some(
                asio::buffer(in_), [self = shared_from_this()](std::error_code ec, std::size_t n) {
                    self->reading_ = false;
                    if (ec == asio::error::eof) {
                        // Half-closed: answer what was sent, then close.
                        self->eof_ = true;
                        return self->pump();
                    }
                    if (ec) return self->close();  // gone: pending answers will be dropped
                    self->parser_.feed(std::string_view(self->in_.data(), n));
                    self->pump();
                });
        }

        std::uint64_t push() {
            slots_.push_back({{}, false, clock::now() + s_.opt_.command_timeout});
            return first_seq_ + slots_.size() - 1;
        }
        /// A slot answered by the server itself, counted as held until written.
        void push_answered(std::string reply) {
            reply_bytes_ += reply.size();
            slots_.push_back({std::move(reply), true, {}});
        }

        void flush() {
            while (!slots_.empty() && slots_.front().ready) {
                out_ += slots_.front().reply;
                slots_.pop_front();
                ++first_seq_;
            }
            write();
        }

        void write() {
            if (writing_ || closed_) return;
            if (out_.empty()) {
                if ((close_after_flush_ || (eof_ && !held_)) && slots_.empty()) close();
                return;
            }
            writing_ = true;
            sending_.swap(out_);
            out_.clear();
            asio::async_write(sock_, asio::buffer(sending_),
                              [self = shared_from_this()](std::error_code ec, std::size_t) {
                                  self->writing_ = false;
                                  if (ec) return self->close();
                                  self->reply_bytes_ -= self->sending_.size();
                                  self->sending_.clear();
                                  self->write();
                                  self->pump();  // reading may have waited for the client
                              });
        }

        server& s_;
        asio::ip::tcp::socket sock_;
        parser parser_;
        std::array<char, 64 << 10> in_{};
        std::deque<slot> slots_;  // answers in request order
        std::uint64_t first_seq_ = 0;
        std::size_t in_flight_ = 0;  // run, and its handler has not answered (timed out or not)
        std::vector<std::string> args_;
        std::optional<std::vector<std::string>> held_;  // parsed, waiting for its turn
        clock::time_point held_deadline_;               // ...answered, not run, past it
        bool held_write_ = false, write_in_flight_ = false;
        std::string out_, sending_;
        bool reading_ = false, writing_ = false, closed_ = false, close_after_flush_ = false;
        bool eof_ = false;  // the client sent everything it will
        // Bytes of replies held for the client, from the moment a handler answers until they
        // are written (any thread adds; the I/O thread takes away).
        std::atomic<std::size_t> reply_bytes_{0};
        std::atomic<bool> overflow_{false};  // a reply would have passed max_unread_bytes
    };

    /// Answers on their way to the I/O thread. The apply thread answers a whole batch of
    /// commands at once; one handler posted per batch, not per answer, delivers them all.
    /// Shared with every `reply` function, which may outlive the server.
    class answer_queue : public std::enable_shared_from_this<answer_queue> {
    public:
        explicit answer_queue(asio::io_context& io) : io_(io) {}

        void push(std::weak_ptr<connection> c, std::uint64_t seq, std::string reply) {
            bool post = false;
            {
                std::lock_guard lock(mutex_);
                queued_.push_back({std::move(c), seq, std::move(reply)});
                post = !posted_;
                posted_ = true;
            }
            if (post) asio::post(io_, [self = shared_from_this()] { self->deliver(); });
        }

    private:
        struct answer {
            std::weak_ptr<connection> c;
            std::uint64_t seq;
            std::string reply;
        };

        void deliver() {
            {
                std::lock_guard lock(mutex_);
                delivering_.swap(queued_);
                posted_ = false;
            }
            for (auto& a : delivering_)
                if (auto c = a.c.lock()) c->answer(a.seq, std::move(a.reply));
            delivering_.clear();  // keeps its capacity for the next batch
        }

        asio::io_context& io_;
        std::mutex mutex_;
        std::vector<answer> queued_, delivering_;  // delivering_: the I/O thread's only
        bool posted_ = false;
    };

    void accept() {
        acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket sock) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
            if (ec) {  // out of file descriptors, say: retrying at once would spin
                const auto now = clock::now();
                if (now - accept_failed_logged_ >= std::chrono::seconds(10)) {
                    accept_failed_logged_ = now;
                    opt_.log("cannot accept a client on " + opt_.host + ":" +
                             std::to_string(port()) + ": " + ec.message() +
                             " (retrying every 100 ms; logged at most every 10 s)");
                }
                accept_retry_.expires_after(std::chrono::milliseconds(100));
                accept_retry_.async_wait([this](std::error_code e) {
                    if (!e) accept();
                });
                return;
            }
            std::error_code ignore;
            if (open_ >= opt_.max_clients) {  // as Redis answers, then closes
                const std::string full = error("ERR max number of clients reached");
                sock.non_blocking(true, ignore);
                sock.write_some(asio::buffer(full), ignore);
                sock.close(ignore);
            } else {
                sock.set_option(asio::ip::tcp::no_delay(true), ignore);
                auto c = std::make_shared<connection>(*this, std::move(sock));
                ++open_;
                conns_.push_back(c);
                c->start();
            }
            accept();
        });
    }

    /// Every 100 ms: answer overdue commands, forget closed connections.
    void sweep() {
        sweep_.expires_after(std::chrono::milliseconds(100));
        sweep_.async_wait([this](std::error_code ec) {
            if (ec) return;
            const auto now = clock::now();
            std::erase_if(conns_, [&](const std::shared_ptr<connection>& c) {
                if (c->closed()) return true;
                c->expire(now);
                return false;
            });
            sweep();
        });
    }

    asio::io_context& io_;
    options opt_;
    handler handler_;
    classifier is_write_;
    asio::ip::tcp::acceptor acceptor_;
    asio::steady_timer sweep_;
    asio::steady_timer accept_retry_;
    clock::time_point accept_failed_logged_{};
    std::size_t open_ = 0;                            // connections not closed (I/O thread)
    std::vector<std::shared_ptr<connection>> conns_;  // closed ones are swept
    std::shared_ptr<answer_queue> answers_ = std::make_shared<answer_queue>(io_);
};

}  // namespace craft::examples::resp
