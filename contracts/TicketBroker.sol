// SPDX-License-Identifier: GPL-3.0-or-later
pragma solidity 0.8.37;

interface IRoundsManager {
    function currentRound() external view returns (uint256);
    function currentRoundInitialized() external view returns (bool);
    function blockHashForRound(uint256 _round) external view returns (bytes32);
}

/// @title TicketBroker (lpt test chain)
/// @notice Livepeer's probabilistic-micropayment broker with the same function signatures,
/// selectors, events and redemption checks (in the same order) as the Arbitrum One deployment,
/// so lpt's clients and event readers run unchanged against either. Differences that do not
/// change the interface: winnings are paid in ETH straight to the recipient (Livepeer routes them
/// to the BondingManager as fees), and a reserve is shared by a fixed `reserveRecipients` count
/// instead of the active transcoder pool size.
contract TicketBroker {
    struct Ticket {
        address recipient;
        address sender;
        uint256 faceValue;
        uint256 winProb;
        uint256 senderNonce;
        bytes32 recipientRandHash;
        bytes auxData;
    }

    struct Sender {
        uint256 deposit;
        uint256 withdrawRound;
    }

    struct ReserveInfo {
        uint256 fundsRemaining;
        uint256 claimedInCurrentRound;
    }

    struct Reserve {
        uint256 funds;
        mapping(uint256 => uint256) claimedForRound;
        mapping(uint256 => mapping(address => uint256)) claimedByRecipient;
    }

    uint256 public constant ticketValidityPeriod = 2;

    IRoundsManager public immutable roundsManager;
    uint256 public immutable unlockPeriod;
    uint256 public immutable reserveRecipients;

    mapping(address => Sender) internal senders;
    mapping(address => Reserve) internal reserves;
    mapping(bytes32 => bool) public usedTickets;

    event DepositFunded(address indexed sender, uint256 amount);
    event ReserveFunded(address indexed reserveHolder, uint256 amount);
    event ReserveClaimed(address indexed reserveHolder, address claimant, uint256 amount);
    event WinningTicketRedeemed(
        address indexed sender,
        address indexed recipient,
        uint256 faceValue,
        uint256 winProb,
        uint256 senderNonce,
        uint256 recipientRand,
        bytes auxData
    );
    event WinningTicketTransfer(address indexed sender, address indexed recipient, uint256 amount);
    event Unlock(address indexed sender, uint256 startRound, uint256 endRound);
    event UnlockCancelled(address indexed sender);
    event Withdrawal(address indexed sender, uint256 deposit, uint256 reserve);

    constructor(address _roundsManager, uint256 _unlockPeriod, uint256 _reserveRecipients) {
        require(_reserveRecipients > 0, "reserve recipients is zero");
        roundsManager = IRoundsManager(_roundsManager);
        unlockPeriod = _unlockPeriod;
        reserveRecipients = _reserveRecipients;
    }

    function fundDeposit() external payable {
        processDeposit(msg.sender, msg.value);
    }

    function fundReserve() external payable {
        processReserve(msg.sender, msg.value);
    }

    function fundDepositAndReserve(uint256 _depositAmount, uint256 _reserveAmount) external payable {
        require(
            msg.value == _depositAmount + _reserveAmount,
            "msg.value does not equal sum of deposit amount and reserve amount"
        );
        processDeposit(msg.sender, _depositAmount);
        processReserve(msg.sender, _reserveAmount);
    }

    function redeemWinningTicket(Ticket memory _ticket, bytes memory _sig, uint256 _recipientRand) public {
        require(roundsManager.currentRoundInitialized(), "current round is not initialized");
        bytes32 ticketHash = getTicketHash(_ticket);
        requireValidWinningTicket(_ticket, ticketHash, _sig, _recipientRand);

        Sender storage sender = senders[_ticket.sender];
        require(!isUnlocked(sender), "sender is unlocked");
        require(
            sender.deposit > 0 || reserves[_ticket.sender].funds > 0,
            "sender deposit and reserve are zero"
        );

        usedTickets[ticketHash] = true;

        uint256 amountToTransfer;
        if (_ticket.faceValue > sender.deposit) {
            uint256 shortfall = _ticket.faceValue - sender.deposit;
            amountToTransfer = sender.deposit + claimFromReserve(_ticket.sender, _ticket.recipient, shortfall);
            sender.deposit = 0;
        } else {
            amountToTransfer = _ticket.faceValue;
            sender.deposit -= _ticket.faceValue;
        }

        emit WinningTicketRedeemed(
            _ticket.sender,
            _ticket.recipient,
            _ticket.faceValue,
            _ticket.winProb,
            _ticket.senderNonce,
            _recipientRand,
            _ticket.auxData
        );

        if (amountToTransfer > 0) {
            emit WinningTicketTransfer(_ticket.sender, _ticket.recipient, amountToTransfer);
            (bool ok, ) = payable(_ticket.recipient).call{ value: amountToTransfer }("");
            require(ok, "winning ticket transfer failed");
        }
    }

    /// @notice Redeems every ticket, all or nothing: one failing ticket reverts the batch.
    function batchRedeemWinningTickets(
        Ticket[] memory _tickets,
        bytes[] memory _sigs,
        uint256[] memory _recipientRands
    ) public {
        require(
            _tickets.length == _sigs.length && _tickets.length == _recipientRands.length,
            "array lengths differ"
        );
        for (uint256 i = 0; i < _tickets.length; i++) {
            redeemWinningTicket(_tickets[i], _sigs[i], _recipientRands[i]);
        }
    }

    function unlock() external {
        Sender storage sender = senders[msg.sender];
        require(sender.deposit > 0 || reserves[msg.sender].funds > 0, "sender deposit and reserve are zero");
        require(!isUnlockInProgress(sender), "unlock already initiated");
        uint256 currentRound = roundsManager.currentRound();
        sender.withdrawRound = currentRound + unlockPeriod;
        emit Unlock(msg.sender, currentRound, sender.withdrawRound);
    }

    function cancelUnlock() external {
        Sender storage sender = senders[msg.sender];
        require(isUnlockInProgress(sender), "no unlock request in progress");
        sender.withdrawRound = 0;
        emit UnlockCancelled(msg.sender);
    }

    function withdraw() external {
        Sender storage sender = senders[msg.sender];
        Reserve storage reserve = reserves[msg.sender];
        uint256 deposit = sender.deposit;
        uint256 reserveFunds = reserve.funds;
        require(deposit > 0 || reserveFunds > 0, "sender deposit and reserve are zero");
        require(isUnlockInProgress(sender), "no unlock request in progress");
        require(isUnlocked(sender), "account is locked");

        sender.deposit = 0;
        sender.withdrawRound = 0;
        reserve.funds = 0;
        emit Withdrawal(msg.sender, deposit, reserveFunds);

        (bool ok, ) = payable(msg.sender).call{ value: deposit + reserveFunds }("");
        require(ok, "withdrawal transfer failed");
    }

    function getSenderInfo(address _sender) external view returns (Sender memory sender, ReserveInfo memory reserve) {
        sender = senders[_sender];
        Reserve storage r = reserves[_sender];
        reserve = ReserveInfo(r.funds, r.claimedForRound[roundsManager.currentRound()]);
    }

    function claimedReserve(address _reserveHolder, address _claimant) external view returns (uint256) {
        return reserves[_reserveHolder].claimedByRecipient[roundsManager.currentRound()][_claimant];
    }

    function isUnlockInProgress(address _sender) external view returns (bool) {
        return isUnlockInProgress(senders[_sender]);
    }

    function getTicketHash(Ticket memory _ticket) public pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                _ticket.recipient,
                _ticket.sender,
                _ticket.faceValue,
                _ticket.winProb,
                _ticket.senderNonce,
                _ticket.recipientRandHash,
                _ticket.auxData
            )
        );
    }

    function requireValidWinningTicket(
        Ticket memory _ticket,
        bytes32 _ticketHash,
        bytes memory _sig,
        uint256 _recipientRand
    ) internal view {
        require(_ticket.recipient != address(0), "ticket recipient is null address");
        require(_ticket.sender != address(0), "ticket sender is null address");
        requireValidTicketAuxData(_ticket.auxData);
        require(
            keccak256(abi.encodePacked(_recipientRand)) == _ticket.recipientRandHash,
            "recipientRand does not match recipientRandHash"
        );
        require(!usedTickets[_ticketHash], "ticket is used");
        require(recoverSigner(_ticketHash, _sig) == _ticket.sender, "invalid signature over ticket hash");
        require(
            uint256(keccak256(abi.encodePacked(_sig, _recipientRand))) < _ticket.winProb,
            "ticket did not win"
        );
    }

    function requireValidTicketAuxData(bytes memory _auxData) internal view {
        require(_auxData.length == 64, "invalid length for ticket auxData: must be 64 bytes");
        (uint256 creationRound, bytes32 creationRoundBlockHash) = abi.decode(_auxData, (uint256, bytes32));
        bytes32 blockHash = roundsManager.blockHashForRound(creationRound);
        require(blockHash != bytes32(0), "ticket creationRound does not have a block hash");
        require(creationRoundBlockHash == blockHash, "ticket creationRoundBlockHash invalid for creationRound");
        require(creationRound + ticketValidityPeriod > roundsManager.currentRound(), "ticket is expired");
    }

    /// @dev EIP-191 personal_sign recovery with the low-s and v rules (OpenZeppelin ECDSA's).
    function recoverSigner(bytes32 _hash, bytes memory _sig) internal pure returns (address) {
        require(_sig.length == 65, "ECDSA: invalid signature length");
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(_sig, 32))
            s := mload(add(_sig, 64))
            v := byte(0, mload(add(_sig, 96)))
        }
        require(
            uint256(s) <= 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0,
            "ECDSA: invalid signature 's' value"
        );
        require(v == 27 || v == 28, "ECDSA: invalid signature 'v' value");
        bytes32 digest = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", _hash));
        address signer = ecrecover(digest, v, r, s);
        require(signer != address(0), "ECDSA: invalid signature");
        return signer;
    }

    function claimFromReserve(address _reserveHolder, address _claimant, uint256 _amount) internal returns (uint256) {
        Reserve storage reserve = reserves[_reserveHolder];
        uint256 round = roundsManager.currentRound();
        uint256 allocation = (reserve.funds + reserve.claimedForRound[round]) / reserveRecipients;
        uint256 claimed = reserve.claimedByRecipient[round][_claimant];
        if (claimed >= allocation) {
            return 0;
        }
        uint256 claimable = allocation - claimed;
        uint256 amount = _amount > claimable ? claimable : _amount;
        reserve.claimedByRecipient[round][_claimant] = claimed + amount;
        reserve.claimedForRound[round] += amount;
        reserve.funds -= amount;
        if (amount > 0) {
            emit ReserveClaimed(_reserveHolder, _claimant, amount);
        }
        return amount;
    }

    function processDeposit(address _sender, uint256 _amount) internal {
        Sender storage sender = senders[_sender];
        sender.deposit += _amount;
        if (isUnlockInProgress(sender)) {
            sender.withdrawRound = 0;
            emit UnlockCancelled(_sender);
        }
        emit DepositFunded(_sender, _amount);
    }

    function processReserve(address _reserveHolder, uint256 _amount) internal {
        Sender storage sender = senders[_reserveHolder];
        reserves[_reserveHolder].funds += _amount;
        if (isUnlockInProgress(sender)) {
            sender.withdrawRound = 0;
            emit UnlockCancelled(_reserveHolder);
        }
        emit ReserveFunded(_reserveHolder, _amount);
    }

    function isUnlockInProgress(Sender storage _sender) internal view returns (bool) {
        return _sender.withdrawRound > 0;
    }

    function isUnlocked(Sender storage _sender) internal view returns (bool) {
        return _sender.withdrawRound > 0 && roundsManager.currentRound() >= _sender.withdrawRound;
    }
}
