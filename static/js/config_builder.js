/* The metric config builder (operator admin): a form above every price config textarea
 * (textarea.pricing-config) that writes the JSON as you fill it, and reads it back when you edit
 * the JSON by hand (the JSON stays the source of truth, and keys the form does not know — overrides,
 * a limit's extra settings — are kept as they are). Every change asks the server for the price
 * preview (catalog/admin/config_builder.py: the rating engine itself), so the prices are seen
 * before saving. Decimals are written as strings, as the engine requires. No dependencies. */
(function () {
  'use strict';

  var MODELS = {
    per_unit: [['rate', 'Rate per unit'], ['included_free', 'Included free units']],
    flat: [['amount', 'Amount per period']],
    included_quota: [['quota', 'Included units'], ['overage_rate', 'Rate per unit beyond']],
    graduated: 'tiers',
    volume: 'tiers',
    package: [['package_size', 'Package size (units)'], ['rate', 'Rate per package'], ['free_units', 'Free units'],
      ['rounding', 'Rounding', ['', 'up', 'down']]],
    percentage: [['rate', 'Percent of each transaction'], ['fixed_fee', 'Fixed fee per transaction'],
      ['per_transaction_min', 'Minimum per transaction'], ['per_transaction_max', 'Maximum per transaction'],
      ['free_events', 'Free transactions'], ['free_amount', 'Free amount'], ['min_fee', 'Minimum fee per period']]
  };
  var TIER_KEYS = [['up_to', 'Up to (empty: no end)'], ['unit_amount', 'Unit amount'], ['flat_amount', 'Flat amount']];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === 'text') node.textContent = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function text(value) {
    return value === null || value === undefined ? '' : String(value);
  }

  function parse(raw) {
    try {
      var value = JSON.parse(raw || '{}');
      return value && typeof value === 'object' && !Array.isArray(value) ? value : null;
    } catch (error) {
      return null;
    }
  }

  function input(key, label, value, choices) {
    var field;
    if (choices) {
      field = el('select', { 'data-key': key, 'aria-label': label });
      choices.forEach(function (choice) {
        var option = el('option', { value: choice, text: choice || '(default)' });
        if (choice === text(value)) option.selected = true;
        field.appendChild(option);
      });
    } else {
      field = el('input', { type: 'text', 'data-key': key, 'aria-label': label, size: '12', inputmode: 'decimal' });
      field.value = text(value);
    }
    return el('label', { class: 'cb-field' }, [el('span', { text: label }), field]);
  }

  function Builder(textarea) {
    this.textarea = textarea;
    this.root = el('div', { class: 'config-builder' });
    this.preview = el('div', { class: 'cb-preview', 'aria-live': 'polite' });
    this.timer = null;
    textarea.parentNode.insertBefore(this.root, textarea);
    textarea.parentNode.insertBefore(this.preview, textarea.nextSibling);
    var self = this;
    this.root.addEventListener('input', function () { self.write(); });
    this.root.addEventListener('change', function () { self.write(); });
    this.root.addEventListener('click', function (event) {
      var action = event.target.getAttribute('data-action');
      if (!action) return;
      event.preventDefault();
      var state = self.read();
      state.tiers = state.tiers || [];
      if (action === 'add-tier') {
        var last = state.tiers[state.tiers.length - 1];
        if (last && last.up_to === null) last.up_to = '';
        state.tiers.push({ up_to: null });
      } else if (action === 'remove-tier') {
        state.tiers.splice(Number(event.target.getAttribute('data-index')), 1);
      }
      self.commit(state, true);
    });
    textarea.addEventListener('input', function () {
      var state = parse(textarea.value);
      if (state) self.render(state);
      self.schedule();
    });
    this.render(parse(textarea.value) || { model: 'per_unit' });
    if (textarea.value.trim()) this.schedule();
  }

  Builder.prototype.render = function (state) {
    var root = this.root;
    root.textContent = '';
    var model = el('select', { 'data-key': 'model', 'aria-label': 'Pricing model' });
    Object.keys(MODELS).forEach(function (name) {
      var option = el('option', { value: name, text: name.replace('_', ' ') });
      if (name === state.model) option.selected = true;
      model.appendChild(option);
    });
    root.appendChild(el('label', { class: 'cb-field cb-model' }, [el('span', { text: 'Pricing model' }), model]));
    var spec = MODELS[state.model] || MODELS.per_unit;
    if (spec === 'tiers') {
      var rows = (state.tiers || []).map(function (tier, index) {
        var cells = TIER_KEYS.map(function (pair) {
          var cell = el('input', { type: 'text', 'data-tier': String(index), 'data-key': pair[0], 'aria-label': pair[1] + ' (tier ' + (index + 1) + ')', size: '10', inputmode: 'decimal' });
          cell.value = text(tier[pair[0]]);
          return el('td', {}, [cell]);
        });
        cells.push(el('td', {}, [el('button', { type: 'button', 'data-action': 'remove-tier', 'data-index': String(index), text: 'Remove' })]));
        return el('tr', {}, cells);
      });
      var head = el('tr', {}, TIER_KEYS.map(function (pair) { return el('th', { text: pair[1] }); }).concat([el('th')]));
      root.appendChild(el('table', { class: 'cb-tiers' }, [el('thead', {}, [head]), el('tbody', {}, rows)]));
      root.appendChild(el('button', { type: 'button', 'data-action': 'add-tier', text: 'Add a tier' }));
    } else {
      root.appendChild(el('div', { class: 'cb-fields' }, spec.map(function (field) {
        return input(field[0], field[1], state[field[0]], field[2]);
      })));
    }
    if (state.model !== 'percentage') {
      var limit = state.limit || {};
      root.appendChild(el('div', { class: 'cb-fields cb-limit' }, [
        input('limit.units', 'Hard limit: units per period (empty: none)', limit.units),
        input('limit.overage', 'Beyond the limit', limit.overage, ['block', 'bill'])
      ]));
    }
    var overrides = (state.overrides || []).length;
    if (overrides) {
      root.appendChild(el('p', { class: 'help', text: overrides + ' dimension override(s): kept as they are; edit them in the JSON below.' }));
    }
  };

  /* The state the form shows, merged over the JSON's (keys the form does not know are kept). */
  Builder.prototype.read = function () {
    var old = parse(this.textarea.value) || {};
    var model = this.root.querySelector('[data-key="model"]').value;
    var state = { model: model };
    var spec = MODELS[model];
    var root = this.root;
    if (old.model === model) {
      Object.keys(old).forEach(function (key) { if (key !== 'model') state[key] = old[key]; });
    } else if (old.overrides) {
      state.overrides = old.overrides;
    }
    if (spec === 'tiers') {
      var tiers = [];
      root.querySelectorAll('[data-tier]').forEach(function (cell) {
        var index = Number(cell.getAttribute('data-tier'));
        tiers[index] = tiers[index] || {};
        var value = cell.value.trim();
        var key = cell.getAttribute('data-key');
        if (key === 'up_to') tiers[index].up_to = value === '' ? null : value;
        else if (value !== '') tiers[index][key] = value;
      });
      state.tiers = root.querySelector('[data-tier]') || old.model === model ? tiers : [{ up_to: null }];
    } else {
      delete state.tiers;
      spec.forEach(function (field) {
        var node = root.querySelector('[data-key="' + field[0] + '"]');
        var value = node ? node.value.trim() : '';
        if (value === '') delete state[field[0]];
        else state[field[0]] = value;
      });
    }
    var units = root.querySelector('[data-key="limit.units"]');
    if (model === 'percentage' || !units || units.value.trim() === '') {
      delete state.limit;
    } else {
      state.limit = Object.assign({}, old.limit || {}, {
        units: units.value.trim(), overage: root.querySelector('[data-key="limit.overage"]').value
      });
    }
    return state;
  };

  Builder.prototype.commit = function (state, rerender) {
    this.textarea.value = JSON.stringify(state, null, 2);
    if (rerender) this.render(state);
    this.schedule();
  };

  Builder.prototype.write = function () {
    var before = parse(this.textarea.value) || {};
    var state = this.read();
    this.commit(state, before.model !== state.model);
  };

  Builder.prototype.schedule = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.refresh(); }, 300);
  };

  Builder.prototype.refresh = function () {
    var url = this.textarea.getAttribute('data-preview-url');
    var form = this.textarea.form;
    var token = form && form.querySelector('[name=csrfmiddlewaretoken]');
    if (!url || !token) return;
    var body = new FormData();
    body.append('config', this.textarea.value);
    body.append('currency', this.textarea.getAttribute('data-currency') || '');
    var preview = this.preview;
    var sent = this.textarea.value;
    var textarea = this.textarea;
    preview.setAttribute('aria-busy', 'true');
    fetch(url, { method: 'POST', body: body, credentials: 'same-origin', headers: { 'X-CSRFToken': token.value } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        if (textarea.value !== sent) return; // a newer change is on its way
        preview.innerHTML = html; // server-rendered and escaped (format_html / the template)
        preview.setAttribute('data-config', sent);
      })
      .catch(function (status) { preview.textContent = 'No preview (' + status + ').'; })
      .then(function () { preview.removeAttribute('aria-busy'); });
  };

  function attach(root) {
    (root || document).querySelectorAll('textarea.pricing-config').forEach(function (textarea) {
      if (textarea.name.indexOf('__prefix__') !== -1 || textarea.getAttribute('data-builder')) return;
      textarea.setAttribute('data-builder', 'on');
      new Builder(textarea);
    });
  }

  document.addEventListener('DOMContentLoaded', function () { attach(document); });
  document.addEventListener('formset:added', function (event) { attach(event.target); });
})();
